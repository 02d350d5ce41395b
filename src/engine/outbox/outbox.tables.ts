import type { ColumnType, Generated, JSONColumnType } from 'kysely';

/** int8 columns arrive as strings from pg (they may exceed 2^53); write them as string or number. */
type Int8 = ColumnType<string, string | number, string | number>;
/** xid8 columns travel as decimal strings. */
type Xid8 = string;
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

/** `outbox.events`: the append-only log. */
export interface EventsTable {
  position: ColumnType<string, never, never>;
  id: string;
  transaction_id: ColumnType<Xid8, never, never>;
  log_xid: Xid8;
  stream_type: string;
  stream_id: string;
  stream_version: number;
  type: string;
  schema_version: number;
  payload: JSONColumnType<object | null, string, never>;
  metadata: JSONColumnType<Record<string, unknown>, string, never>;
  occurred_at: Timestamp;
}

/** `outbox.streams`: one row per stream, its version and the lock appends take. */
export interface StreamsTable {
  stream_type: string;
  stream_id: string;
  version: number;
  log_xid: Xid8;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** `outbox.consumers`. */
export interface ConsumersTable {
  name: string;
  event_types: string[];
  stream_types: string[] | null;
  partitions: number;
  status: Generated<'active' | 'paused'>;
  on_exhausted: Generated<'dead_letter' | 'block'>;
  /** `handler` (declared in code) or `destination` (see `outbox.destinations`). */
  kind: Generated<'handler' | 'destination'>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** `outbox.consumer_partitions`: one checkpoint per consumer partition. */
export interface ConsumerPartitionsTable {
  consumer: string;
  partition: number;
  checkpoint_xid: Generated<Xid8>;
  checkpoint_position: Generated<Int8>;
  handled: Generated<Int8>;
  updated_at: Generated<Date>;
}

/** `outbox.blocked_streams`: streams waiting behind a failed event, per consumer. */
export interface BlockedStreamsTable {
  consumer: string;
  stream_type: string;
  stream_id: string;
  partition: number;
  event_position: Int8;
  stream_version: number;
  attempts: number;
  next_attempt_at: Date | null;
  last_error: string;
  first_failed_at: Generated<Date>;
  last_failed_at: Generated<Date>;
}

/** `outbox.dead_letters`. */
export interface DeadLettersTable {
  id: Generated<Int8>;
  consumer: string;
  partition: number;
  event_position: Int8;
  event_id: string;
  stream_type: string;
  stream_id: string;
  stream_version: number;
  event_type: string;
  attempts: number;
  last_error: string;
  error_stack: string | null;
  first_failed_at: Timestamp;
  dead_at: Generated<Date>;
  redrive_requested_at: Date | null;
  redriven_at: Date | null;
}

/** `outbox.consumer_lag` (view). */
export interface ConsumerLagView {
  consumer: string;
  partition: number;
  status: 'active' | 'paused';
  checkpoint: string;
  head: string;
  lag: string;
  oldest_pending_at: Date | null;
  retrying: string;
  blocked: string;
  dead_letters: string;
  handled: string;
  updated_at: Date;
}

/** The outbox schema's tables, keyed as Kysely expects. */
export interface OutboxTables {
  'outbox.events': EventsTable;
  'outbox.streams': StreamsTable;
  'outbox.consumers': ConsumersTable;
  'outbox.consumer_partitions': ConsumerPartitionsTable;
  'outbox.blocked_streams': BlockedStreamsTable;
  'outbox.dead_letters': DeadLettersTable;
  'outbox.consumer_lag': ConsumerLagView;
}
