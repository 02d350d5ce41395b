import { type QueryExecutorProvider, sql } from 'kysely';
import { PREPARE } from '../db/prepared.ts';
import { ConcurrencyError, ValidationError } from '../errors.ts';
import type { EventMetadata, NewEvent } from './event.ts';

/** Options of {@link appendEvents}. */
export interface AppendOptions {
  /**
   * Optimistic concurrency for a single-stream append: the stream's version the caller based its decision
   * on. `0` means "the stream must not exist yet". Omitted: append at whatever the current version is.
   */
  readonly expectedVersion?: number;
  /** Merged under each event's own metadata (e.g. the request's correlation id). */
  readonly metadata?: EventMetadata;
}

/** One event as it was written. */
export interface AppendedEvent {
  readonly id: string;
  readonly position: string;
  readonly streamType: string;
  readonly streamId: string;
  readonly streamVersion: number;
  readonly logXid: string;
}

/** What {@link appendEvents} did. */
export interface AppendResult {
  readonly events: readonly AppendedEvent[];
  /** Ids that were already in the log (idempotent re-append): not written again. */
  readonly duplicateIds: readonly string[];
  /** Version of each touched stream after the append, keyed `streamType/streamId`. */
  readonly streamVersions: ReadonlyMap<string, number>;
}

/** Anything Kysely can run queries on that knows whether it is a transaction (a Kysely `Transaction`). */
export type TransactionLike = QueryExecutorProvider & { readonly isTransaction: boolean };

interface InsertedRow {
  id: string;
  position: string;
  stream_version: number;
  log_xid: string;
}

/**
 * Appends events inside the caller's transaction, so they commit or roll back with the business rows.
 *
 * - Payloads were validated when the events were built ({@link EventDefinition.create}); nothing is written
 *   unless every event is valid.
 * - Versions 1, 2, 3… are assigned per stream under the stream's row lock: concurrent writers never collide,
 *   and with `expectedVersion` a stale writer gets a {@link ConcurrencyError}.
 * - An event id that is already in the log is skipped (idempotent retry), not appended twice.
 * - Streams are locked in a fixed order, so multi-stream appends cannot deadlock each other.
 *
 * Must run in a transaction: on error the transaction is unusable and must be rolled back.
 */
export async function appendEvents(
  trx: TransactionLike,
  events: readonly NewEvent[],
  options: AppendOptions = {},
): Promise<AppendResult> {
  if (events.length === 0) return { events: [], duplicateIds: [], streamVersions: new Map() };
  if (!trx.isTransaction) throw new ValidationError('appendEvents must run inside a transaction', 'trx');

  const streams = groupByStream(events);
  if (options.expectedVersion !== undefined) {
    if (streams.size > 1) {
      throw new ValidationError(
        'expectedVersion applies to one stream; these events target several',
        'expectedVersion',
      );
    }
    if (!Number.isInteger(options.expectedVersion) || options.expectedVersion < 0) {
      throw new ValidationError('expectedVersion must be a non-negative integer', 'expectedVersion');
    }
  }

  // Only ids the caller chose can already exist; generated UUIDs skip the look-up (the common path).
  const supplied = events.filter((event) => event.idSupplied).map((event) => event.id);
  const duplicateIds = new Set<string>();
  if (supplied.length > 0) {
    const { rows } = await sql<{
      id: string;
    }>`select id from outbox.events where id = any(${supplied}::uuid[])`.execute(trx);
    for (const row of rows) duplicateIds.add(row.id);
  }

  const appended: AppendedEvent[] = [];
  const streamVersions = new Map<string, number>();
  const keys = [...streams.keys()].sort();
  for (const key of keys) {
    const group = (streams.get(key) ?? []).filter((event) => !duplicateIds.has(event.id));
    const first = group[0];
    if (!first) continue;
    const rows = await appendToStream(trx, first.streamType, first.streamId, group, options);
    for (const row of rows) {
      appended.push({
        id: row.id,
        position: row.position,
        streamType: first.streamType,
        streamId: first.streamId,
        streamVersion: row.stream_version,
        logXid: row.log_xid,
      });
    }
    streamVersions.set(key, Math.max(...rows.map((row) => row.stream_version)));
  }
  return { events: appended, duplicateIds: [...duplicateIds], streamVersions };
}

async function appendToStream(
  trx: TransactionLike,
  streamType: string,
  streamId: string,
  group: readonly NewEvent[],
  options: AppendOptions,
): Promise<InsertedRow[]> {
  const count = group.length;
  const ids = group.map((event) => event.id);
  const types = group.map((event) => event.type);
  const versions = group.map((event) => event.schemaVersion);
  const payloads = group.map((event) => JSON.stringify(event.payload));
  const metadata = group.map((event) => JSON.stringify({ ...options.metadata, ...event.metadata }));
  const occurredAt = group.map((event) => (event.occurredAt ?? null) as Date | null);

  // The stream row is the lock that serialises appends to one stream. Its log_xid only ever grows: each
  // event's log_xid is max(this transaction's xid, the stream's previous log_xid), so that reading the log
  // in (log_xid, position) order yields every stream's events in version order, even when a writer got its
  // xid before waiting for the lock (see the column comment in migrations/000001).
  const expected = options.expectedVersion;
  const lockStream =
    expected === undefined
      ? sql`insert into outbox.streams as s (stream_type, stream_id, version, log_xid)
            values (${streamType}, ${streamId}, ${count}, pg_current_xact_id())
            on conflict (stream_type, stream_id) do update
              set version = s.version + excluded.version,
                  log_xid = greatest(s.log_xid, excluded.log_xid),
                  updated_at = now()
            returning s.version, s.log_xid`
      : expected === 0
        ? sql`insert into outbox.streams (stream_type, stream_id, version, log_xid)
              values (${streamType}, ${streamId}, ${count}, pg_current_xact_id())
              on conflict (stream_type, stream_id) do nothing
              returning version, log_xid`
        : sql`update outbox.streams as s
              set version = s.version + ${count},
                  log_xid = greatest(s.log_xid, pg_current_xact_id()),
                  updated_at = now()
              where s.stream_type = ${streamType} and s.stream_id = ${streamId} and s.version = ${expected}
              returning s.version, s.log_xid`;

  let rows: InsertedRow[];
  try {
    // Prepared (parsed and planned once per connection): planning this CTE costs more than running it.
    const result = await sql<InsertedRow>`${sql.raw(PREPARE)}
      with head as (${lockStream})
      insert into outbox.events
        (id, log_xid, stream_type, stream_id, stream_version, type, schema_version, payload, metadata, occurred_at)
      select e.id, head.log_xid, ${streamType}, ${streamId}, head.version - ${count} + e.ord::int,
             e.type, e.schema_version, e.payload, e.metadata, coalesce(e.occurred_at, now())
      from head,
           unnest(${ids}::uuid[], ${types}::text[], ${versions}::int[], ${payloads}::jsonb[], ${metadata}::jsonb[],
                  ${occurredAt}::timestamptz[])
             with ordinality as e(id, type, schema_version, payload, metadata, occurred_at, ord)
      order by e.ord
      returning id, position, stream_version, log_xid`.execute(trx);
    rows = result.rows;
  } catch (error) {
    throw mapAppendError(error, streamType, streamId);
  }
  if (rows.length === 0) {
    // The stream statement matched nothing: expectedVersion was stale.
    const { rows: current } = await sql<{ version: number }>`
      select version from outbox.streams where stream_type = ${streamType} and stream_id = ${streamId}`.execute(
      trx,
    );
    const actual = current[0]?.version ?? 0;
    throw new ConcurrencyError(
      `Stream ${streamType}/${streamId} is at version ${actual}, not the expected ${expected}`,
      streamType,
      streamId,
      expected,
      actual,
    );
  }
  return rows;
}

function mapAppendError(error: unknown, streamType: string, streamId: string): unknown {
  const pgError = error as { code?: string; constraint?: string };
  if (pgError.code === '23505' && pgError.constraint === 'events_id_key') {
    // Two transactions appended the same id at the same time; the loser retries and finds a duplicate.
    return new ConcurrencyError(
      `An event with the same id was appended concurrently to ${streamType}/${streamId}; retry the transaction`,
      streamType,
      streamId,
    );
  }
  if (pgError.code === '23514' || pgError.code === '22P02') {
    return new ValidationError(`Event rejected by the database: ${(error as Error).message}`);
  }
  return error;
}

function groupByStream(events: readonly NewEvent[]): Map<string, NewEvent[]> {
  const streams = new Map<string, NewEvent[]>();
  const seen = new Set<string>();
  for (const event of events) {
    if (seen.has(event.id))
      throw new ValidationError(`Event id ${event.id} appears twice in one append`, 'id');
    seen.add(event.id);
    const key = `${event.streamType}/${event.streamId}`;
    const group = streams.get(key);
    if (group) group.push(event);
    else streams.set(key, [event]);
  }
  return streams;
}
