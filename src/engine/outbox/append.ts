import { type QueryExecutorProvider, sql } from 'kysely';
import type { QueryResultRow } from 'pg';
import { PREPARE } from '../db/prepared.ts';
import { ConcurrencyError, ValidationError } from '../errors.ts';
import {
  APPEND_EVENTS_NAME,
  APPEND_EVENTS_SQL,
  type AppendEventsRow,
  appendEventsParameters,
  OUTSIDE_TRANSACTION_SQL,
} from '../sql/append-events.ts';
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

/**
 * A `pg` client (`PoolClient` or `Client`) on which the caller has run `BEGIN`. Not a `Pool`: a pool runs
 * each query on whichever connection is free, outside the caller's transaction.
 */
export interface PgTransactionClient {
  query<R extends QueryResultRow = QueryResultRow>(config: {
    name?: string;
    text: string;
    values?: unknown[];
  }): Promise<{ rows: R[] }>;
  /**
   * The status of the last ReadyForQuery (`I` idle, `T` in a transaction, `E` in a failed one), which `pg`
   * reports from 8.21. Older clients lack it; then one extra simple query asks the server.
   */
  getTransactionStatus?(): 'I' | 'T' | 'E' | null;
}

/** Where {@link appendEvents} writes: the caller's Kysely transaction, or a `pg` client inside BEGIN. */
export type AppendTarget = TransactionLike | PgTransactionClient;

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
 * Runs `outbox.append_events` once per stream: the same function SQL producers call, so every producer
 * gets the same guarantees. Must run in a transaction (a Kysely transaction, or a `pg` client after
 * `BEGIN`); outside one it throws a {@link ValidationError} and writes nothing. On any other error the
 * transaction is unusable and must be rolled back.
 */
export async function appendEvents(
  target: AppendTarget,
  events: readonly NewEvent[],
  options: AppendOptions = {},
): Promise<AppendResult> {
  if (events.length === 0) return { events: [], duplicateIds: [], streamVersions: new Map() };
  const run = executorFor(target);
  await run.assertInTransaction();

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

  const appended: AppendedEvent[] = [];
  const duplicateIds: string[] = [];
  const streamVersions = new Map<string, number>();
  for (const key of [...streams.keys()].sort()) {
    const group = streams.get(key) ?? [];
    const first = group[0];
    if (!first) continue;
    const parameters = appendEventsParameters({
      streamType: first.streamType,
      streamId: first.streamId,
      types: group.map((event) => event.type),
      payloads: group.map((event) => JSON.stringify(event.payload)),
      metadata: group.map((event) => JSON.stringify({ ...options.metadata, ...event.metadata })),
      schemaVersions: group.map((event) => event.schemaVersion),
      expectedVersion: options.expectedVersion,
      ids: group.map((event) => event.id),
      occurredAt: group.map((event) => event.occurredAt ?? null),
      // The client-side check above is the reliable one (the function's own check cannot see an implicit
      // transaction over the extended protocol); the flag stays off so both paths send the same statement.
      requireTransaction: false,
      // Only ids the caller chose can already be in the log; generated UUIDs skip the look-up.
      idsAreNew: group.every((event) => !event.idSupplied),
    });
    let rows: AppendEventsRow[];
    try {
      rows = await run.query(parameters);
    } catch (error) {
      throw mapAppendError(error, first.streamType, first.streamId);
    }
    let version: number | undefined;
    for (const row of rows) {
      if (row.duplicate) {
        duplicateIds.push(row.event_id);
        continue;
      }
      appended.push({
        id: row.event_id,
        position: row.position,
        streamType: first.streamType,
        streamId: first.streamId,
        streamVersion: row.stream_version,
        logXid: row.log_xid,
      });
      version = Math.max(version ?? 0, row.stream_version);
    }
    if (version !== undefined) streamVersions.set(key, version);
  }
  return { events: appended, duplicateIds, streamVersions };
}

/**
 * APPEND_EVENTS_SQL as a Kysely template (its $n placeholders are in order), so that Kysely compiles back
 * to the very same text, marked PREPARE.
 */
const KYSELY_FRAGMENTS: TemplateStringsArray = (() => {
  const parts = APPEND_EVENTS_SQL.split(/\$\d+/);
  parts[0] = `${PREPARE}${parts[0]}`;
  return Object.assign(parts, { raw: [...parts] });
})();

interface AppendExecutor {
  /** Throws a ValidationError, writing nothing, when the target is not inside an open transaction. */
  assertInTransaction(): Promise<void>;
  query(parameters: unknown[]): Promise<AppendEventsRow[]>;
}

/**
 * Outside BEGIN a `pg` client runs each statement in its own implicit transaction, so the events would
 * commit without the business writes. The server cannot tell an implicit transaction apart over the
 * extended protocol (now() is the Parse/Bind time, statement_timestamp() the Execute time), so the check
 * is made here: from the protocol's own transaction status when the client reports it, else with one
 * simple-protocol query, where now() = statement_timestamp() exactly when no BEGIN preceded it.
 */
async function assertPgClientInTransaction(client: PgTransactionClient): Promise<void> {
  let status = client.getTransactionStatus?.() ?? null;
  if (status === null) {
    try {
      const { rows } = await client.query<{ idle: boolean }>({ text: OUTSIDE_TRANSACTION_SQL });
      status = rows[0]?.idle ? 'I' : 'T';
    } catch (error) {
      // in_failed_sql_transaction: the caller's transaction already failed.
      if ((error as { code?: string }).code !== '25P02') throw error;
      status = 'E';
    }
  }
  if (status === 'I') {
    throw new ValidationError(
      'appendEvents on a pg client needs an open transaction: run BEGIN on that client first',
      'trx',
    );
  }
  if (status === 'E') {
    throw new ValidationError(
      'the transaction on this pg client has failed: roll it back before appending',
      'trx',
    );
  }
}

function executorFor(target: AppendTarget): AppendExecutor {
  if ('getExecutor' in target) {
    if (!target.isTransaction) {
      throw new ValidationError('appendEvents must run inside a transaction', 'trx');
    }
    return {
      async assertInTransaction() {},
      async query(parameters) {
        // Marked PREPARE: on the engine's own Kysely instances (createDb) it runs as a named prepared
        // statement; on an application's Kysely it runs unnamed, which costs little for a function call.
        const { rows } = await sql<AppendEventsRow>(KYSELY_FRAGMENTS, ...parameters).execute(target);
        return rows;
      },
    };
  }
  if ('totalCount' in target && 'idleCount' in target) {
    throw new ValidationError(
      'appendEvents needs a client inside a transaction (pool.connect(), then BEGIN), not a pool',
      'trx',
    );
  }
  return {
    assertInTransaction: () => assertPgClientInTransaction(target),
    async query(parameters) {
      const { rows } = await target.query<AppendEventsRow>({
        name: APPEND_EVENTS_NAME,
        text: APPEND_EVENTS_SQL,
        values: parameters,
      });
      return rows;
    },
  };
}

function mapAppendError(error: unknown, streamType: string, streamId: string): unknown {
  const pgError = error as { code?: string; constraint?: string; detail?: string; column?: string };
  // in_failed_sql_transaction: the client's own status can lag a failed statement by a moment (it is
  // updated on the ReadyForQuery that follows the error), so the server's answer is mapped too.
  if (pgError.code === '25P02') {
    return new ValidationError(
      'the transaction on this pg client has failed: roll it back before appending',
      'trx',
    );
  }
  if (pgError.code === 'PB409') {
    const detail = parseDetail(pgError.detail);
    return new ConcurrencyError(
      `Stream ${streamType}/${streamId} is at version ${detail.actual_version ?? '?'}, not the expected ${detail.expected_version ?? '?'}`,
      streamType,
      streamId,
      typeof detail.expected_version === 'number' ? detail.expected_version : undefined,
      typeof detail.actual_version === 'number' ? detail.actual_version : undefined,
    );
  }
  if (pgError.code === '23505' && pgError.constraint === 'events_id_key') {
    // Two transactions appended the same id at the same time; the loser retries and finds a duplicate.
    return new ConcurrencyError(
      `An event with the same id was appended concurrently to ${streamType}/${streamId}; retry the transaction`,
      streamType,
      streamId,
    );
  }
  if (pgError.code === '25P01') {
    return new ValidationError('appendEvents must run inside a transaction (BEGIN first)', 'trx');
  }
  if (pgError.code === '22023' || pgError.code === '23514' || pgError.code === '22P02') {
    return new ValidationError(`Event rejected by the database: ${(error as Error).message}`, pgError.column);
  }
  return error;
}

function parseDetail(detail: string | undefined): Record<string, unknown> {
  try {
    return detail ? (JSON.parse(detail) as Record<string, unknown>) : {};
  } catch {
    return {};
  }
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
