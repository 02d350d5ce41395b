import { type QueryExecutorProvider, sql } from 'kysely';
import { ValidationError } from '../errors.ts';
import type { EventDefinition, EventMetadata, RecordedEvent } from './event.ts';
import { READABLE_HORIZON } from './horizon.ts';

/** A point in the log's read order: `(log_xid, position)`. */
export interface LogPoint {
  readonly logXid: string;
  readonly position: string;
}

/** The point before every event. */
export const LOG_START: LogPoint = Object.freeze({ logXid: '0', position: '0' });

const decimal = /^\d{1,20}$/;

/** Opaque cursor for a log point (the same in GraphQL connections, subscriptions and the SQL helpers). */
export function encodeCursor(point: LogPoint): string {
  return Buffer.from(`v1:${point.logXid}:${point.position}`).toString('base64url');
}

/** Parses a cursor from {@link encodeCursor}; anything else is a {@link ValidationError}. */
export function decodeCursor(cursor: string, field = 'cursor'): LogPoint {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const [version, logXid, position, ...rest] = text.split(':');
  if (
    version !== 'v1' ||
    !logXid ||
    !position ||
    rest.length > 0 ||
    !decimal.test(logXid) ||
    !decimal.test(position)
  ) {
    throw new ValidationError(`${field} is not a valid cursor`, field);
  }
  return { logXid, position };
}

/** A stored event row as selected by the read functions. */
export interface EventRow {
  position: string;
  id: string;
  transaction_id: string;
  log_xid: string;
  stream_type: string;
  stream_id: string;
  stream_version: number;
  type: string;
  schema_version: number;
  payload: unknown;
  metadata: EventMetadata;
  occurred_at: Date;
}

/** Columns to select for {@link EventRow} (as a raw SQL fragment, for the hot queries). */
export const eventColumns = sql`e.position, e.id, e.transaction_id, e.log_xid, e.stream_type, e.stream_id,
  e.stream_version, e.type, e.schema_version, e.payload, e.metadata, e.occurred_at`;

/** Event definitions by type, to upcast stored payloads on read. */
export type EventRegistry = ReadonlyMap<string, EventDefinition>;

/** Builds a registry from definitions; two definitions of one type are a mistake. */
export function createEventRegistry(definitions: Iterable<EventDefinition>): EventRegistry {
  const registry = new Map<string, EventDefinition>();
  for (const definition of definitions) {
    const existing = registry.get(definition.type);
    if (existing && existing !== definition) {
      throw new ValidationError(`Event type ${definition.type} is defined twice`, 'type');
    }
    registry.set(definition.type, definition);
  }
  return registry;
}

/**
 * Maps a row to a {@link RecordedEvent}, upcasting the payload to its type's current schema version when
 * the registry knows the type (unknown types pass through as stored). With `validate`, a payload of the
 * current version is checked against the schema too (events appended through SQL were not checked at write),
 * and a {@link ValidationError} names the first bad field.
 */
export function toRecordedEvent(
  row: EventRow,
  registry?: EventRegistry,
  options: { readonly validate?: boolean } = {},
): RecordedEvent {
  const definition = registry?.get(row.type);
  const upcast = definition && row.schema_version !== definition.schemaVersion;
  const payload = !definition
    ? row.payload
    : options.validate
      ? definition.parse(row.payload, row.schema_version)
      : upcast
        ? definition.upcast(row.payload, row.schema_version)
        : row.payload;
  return {
    position: row.position,
    id: row.id,
    type: row.type,
    streamType: row.stream_type,
    streamId: row.stream_id,
    streamVersion: row.stream_version,
    schemaVersion: upcast ? definition.schemaVersion : row.schema_version,
    payload,
    metadata: row.metadata,
    occurredAt: row.occurred_at,
    transactionId: row.transaction_id,
    logXid: row.log_xid,
  };
}

/** The log point of a recorded event (what a cursor for it encodes). */
export function pointOf(event: Pick<RecordedEvent, 'logXid' | 'position'>): LogPoint {
  return { logXid: event.logXid, position: event.position };
}

/** Filters for {@link readLogAfter}. */
export interface LogFilter {
  readonly types?: readonly string[];
  readonly streamType?: string;
  readonly streamId?: string;
  readonly correlationId?: string;
  /** Only events with `occurred_at >= from`. */
  readonly from?: Date | undefined;
  /** Only events with `occurred_at < to`. */
  readonly to?: Date | undefined;
}

/** Options of {@link readLogAfter}. */
export interface ReadLogOptions {
  /** Start after this point; default the start of the log. */
  readonly after?: LogPoint;
  /** Max rows; default 500. */
  readonly limit?: number;
  readonly filter?: LogFilter;
}

/** A page of the log. */
export interface LogPage {
  readonly rows: EventRow[];
  /**
   * Where the next read should continue: the last row's point, or — when the page is empty — still `after`.
   * Never beyond what was safe to read.
   */
  readonly next: LogPoint;
}

/**
 * Reads committed events after a point in log order, gap-safely: only rows whose `log_xid` is below the
 * oldest transaction still running (`pg_snapshot_xmin`). Positions are assigned at insert but transactions
 * commit out of order; a transaction still running may yet commit rows at lower positions, and a reader that
 * moved past them would never see them. Below the snapshot's xmin, nothing new can appear.
 *
 * Consequence to know: a long-running transaction anywhere in the database holds every reader back until it
 * ends (no event is lost, delivery waits).
 */
export async function readLogAfter(
  db: QueryExecutorProvider,
  options: ReadLogOptions = {},
): Promise<LogPage> {
  const after = options.after ?? LOG_START;
  const limit = Math.max(1, Math.min(options.limit ?? 500, 10_000));
  const filter = options.filter ?? {};
  const conditions = [
    sql`(e.log_xid, e.position) > (${after.logXid}::xid8, ${after.position}::bigint)`,
    sql`e.log_xid < ${sql.raw(READABLE_HORIZON)}`,
  ];
  if (filter.types && filter.types.length > 0)
    conditions.push(sql`e.type = any(${[...filter.types]}::text[])`);
  if (filter.streamType) conditions.push(sql`e.stream_type = ${filter.streamType}`);
  if (filter.streamId) conditions.push(sql`e.stream_id = ${filter.streamId}`);
  // `metadata ? 'correlationId'` is the partial index's predicate: without it the index is never used.
  if (filter.correlationId)
    conditions.push(
      sql`e.metadata ? 'correlationId' and e.metadata ->> 'correlationId' = ${filter.correlationId}`,
    );
  if (filter.from) conditions.push(sql`e.occurred_at >= ${filter.from}`);
  if (filter.to) conditions.push(sql`e.occurred_at < ${filter.to}`);
  const { rows } = await sql<EventRow>`
    select ${eventColumns} from outbox.events e
    where ${sql.join(conditions, sql` and `)}
    order by e.log_xid, e.position
    limit ${limit}`.execute(db);
  const last = rows.at(-1);
  return { rows, next: last ? { logXid: last.log_xid, position: last.position } : after };
}

/** Reads one stream's events in version order, from `fromVersion` (default 1). */
export async function readStream(
  db: QueryExecutorProvider,
  streamType: string,
  streamId: string,
  fromVersion = 1,
): Promise<EventRow[]> {
  const { rows } = await sql<EventRow>`
    select ${eventColumns} from outbox.events e
    where e.stream_type = ${streamType} and e.stream_id = ${streamId} and e.stream_version >= ${fromVersion}
    order by e.stream_version`.execute(db);
  return rows;
}

/** Reads several streams of one type at once (one query), each in version order, streams by id. */
export async function readStreams(
  db: QueryExecutorProvider,
  streamType: string,
  streamIds: readonly string[],
): Promise<EventRow[]> {
  if (streamIds.length === 0) return [];
  const { rows } = await sql<EventRow>`
    select ${eventColumns} from outbox.events e
    where e.stream_type = ${streamType} and e.stream_id = any(${[...streamIds]}::text[])
    order by e.stream_id, e.stream_version`.execute(db);
  return rows;
}

/**
 * The newest point readable now (gap-safely): every event at or before it is committed and visible, and no
 * event can still appear before it. `LOG_START` for an empty log.
 */
export async function readLogHead(db: QueryExecutorProvider): Promise<LogPoint> {
  const { rows } = await sql<{ log_xid: string; position: string }>`
    select e.log_xid, e.position from outbox.events e
    where e.log_xid < ${sql.raw(READABLE_HORIZON)}
    order by e.log_xid desc, e.position desc
    limit 1`.execute(db);
  const row = rows[0];
  return row ? { logXid: row.log_xid, position: row.position } : LOG_START;
}

/** Orders two log points: negative when `a` comes first. */
export function comparePoints(a: LogPoint, b: LogPoint): number {
  const xid = BigInt(a.logXid) - BigInt(b.logXid);
  if (xid !== 0n) return xid < 0n ? -1 : 1;
  const position = BigInt(a.position) - BigInt(b.position);
  return position === 0n ? 0 : position < 0n ? -1 : 1;
}
