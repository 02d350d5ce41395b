import { type QueryExecutorProvider, sql } from 'kysely';
import { PREPARE } from '../db/prepared.ts';
import { READABLE_HORIZON } from '../outbox/horizon.ts';
import type { EventRow } from '../outbox/read.ts';

/** A stream held for a consumer behind a failed event (`outbox.blocked_streams`), as the drain reads it. */
export interface BlockedRow {
  stream_type: string;
  stream_id: string;
  event_position: string;
  stream_version: number;
  attempts: number;
  next_attempt_at: string | null;
  first_failed_at: string;
}

/** Everything a delivery transaction needs to know about its partition, read in one round trip. */
export interface PartitionState {
  status: 'active' | 'paused';
  /** The database's clock when it was read (retry times are the database's). */
  db_now: string;
  /** The event types of the consumer's live definitions (see `outbox.consumer_definitions`). */
  event_types: string[];
  checkpoint_xid: string;
  checkpoint_position: string;
  blocked: BlockedRow[];
  has_redrives: boolean;
  /**
   * Next new events after the checkpoint (JSON: occurred_at as an ISO string), and whether a limit (count
   * or bytes) cut them short — more may follow; null while paused.
   */
  batch: { rows: Array<Omit<EventRow, 'occurred_at'> & { occurred_at: string }>; limited: boolean } | null;
  /** The last readable event of the whole log, seen by the same snapshot. */
  head: { logXid: string; position: string } | null;
}

/**
 * Reads a consumer partition's state and its next batch of new events. Must run after the partition lock
 * was granted, in a statement of its own: a snapshot taken before could miss the previous drainer's
 * checkpoint and deliver its events again. Also resets `lock_timeout` (handlers wait for locks normally)
 * and sets `statement_timeout` to the handler timeout for the statements that follow (the handlers'; the
 * drain sets its own back before its bookkeeping).
 *
 * Prepared: planning it cost more than running it; its plan does not depend on the parameters (one
 * consumer partition row, then index walks from its checkpoint).
 */
export async function readPartitionState(
  executor: QueryExecutorProvider,
  input: {
    readonly consumer: string;
    readonly partition: number;
    readonly batchSize: number;
    /** Cap of the batch's stored payload and metadata bytes (the first event always goes). */
    readonly batchBytes: number;
    /** `statement_timeout` for the statements after this one (the handlers'), ms. */
    readonly handlerTimeoutMs: number;
  },
): Promise<PartitionState | undefined> {
  const { consumer, partition, batchSize } = input;
  const { rows } = await sql<PartitionState>`${sql.raw(PREPARE)}
    select set_config('lock_timeout', '0', true) as lock_timeout_reset,
      set_config('statement_timeout', ${String(Math.trunc(input.handlerTimeoutMs))}, true) as handler_timeout,
      c.status, clock_timestamp() as db_now, c.event_types, p.checkpoint_xid, p.checkpoint_position,
      coalesce((select json_agg(json_build_object(
                  'stream_type', b.stream_type, 'stream_id', b.stream_id, 'event_position', b.event_position::text,
                  'stream_version', b.stream_version, 'attempts', b.attempts, 'next_attempt_at', b.next_attempt_at,
                  'first_failed_at', b.first_failed_at))
                from outbox.blocked_streams b where b.consumer = c.name and b.partition = p.partition), '[]') as blocked,
      exists (select 1 from outbox.dead_letters d
              where d.consumer = c.name and d.partition = p.partition
                and d.redrive_requested_at is not null and d.redriven_at is null) as has_redrives,
      -- The next batch of new events, gap-safe against this statement's snapshot.
      -- Capped by count, then by stored bytes (pg_column_size: cheap, no decompression).
      case when c.status = 'active' then (
        select json_build_object(
                 'rows', coalesce(json_agg(json_build_object(
                   'position', e.position::text, 'id', e.id, 'transaction_id', e.transaction_id::text,
                   'log_xid', e.log_xid::text, 'stream_type', e.stream_type, 'stream_id', e.stream_id,
                   'stream_version', e.stream_version, 'type', e.type, 'schema_version', e.schema_version,
                   'payload', e.payload, 'metadata', e.metadata, 'occurred_at', e.occurred_at)
                 order by e.log_xid, e.position) filter (where e.keep), '[]'),
                 'limited', count(*) = ${batchSize} or coalesce(bool_or(not e.keep), false))
        from (select e.*,
                     row_number() over w = 1
                       or sum(pg_column_size(e.payload) + pg_column_size(e.metadata)) over w <= ${input.batchBytes}
                       as keep
              -- The inner subquery walks the log-order index forward from the checkpoint; OFFSET 0 keeps the
              -- planner from merging the filters into it. Merged, it estimated the partition filter at the
              -- default 0.5 % selectivity and read the whole backlog (bitmap scan, then sort) for every batch.
              from (select * from (select * from outbox.events e
                                   where (e.log_xid, e.position) > (p.checkpoint_xid, p.checkpoint_position)
                                     and e.log_xid < ${sql.raw(READABLE_HORIZON)}
                                   order by e.log_xid, e.position
                                   offset 0) e
                    where e.type = any (c.event_types)
                      and (c.stream_types is null or e.stream_type = any (c.stream_types))
                      and outbox.partition_of(e.stream_id, c.partitions) = p.partition
                    limit ${batchSize}) e
              window w as (order by e.log_xid, e.position)) e)
      end as batch,
      -- When the batch is not limited, every matching event up to this point was in it, so the checkpoint may
      -- move here (a consumer of rare types then does not re-read the same non-matching events each time).
      (select json_build_object('logXid', h.log_xid::text, 'position', h.position::text)
       from outbox.events h where h.log_xid < ${sql.raw(READABLE_HORIZON)}
       order by h.log_xid desc, h.position desc limit 1) as head
    from outbox.consumers c join outbox.consumer_partitions p on p.consumer = c.name
    where c.name = ${consumer} and p.partition = ${partition}`.execute(executor);
  return rows[0];
}
