import { type Kysely, sql } from 'kysely';
import type { RecordedEvent } from '../outbox/event.ts';
import { type EventRow, LOG_START, type LogFilter, type LogPoint, readLogAfter } from '../outbox/read.ts';

/** What the API lets clients filter the log by (connection and subscriptions alike): the engine's filter. */
export type EventFilter = LogFilter;

/** Options of {@link readEventPage}. */
export interface ReadEventPageOptions {
  readonly after?: LogPoint;
  readonly limit: number;
  readonly filter?: EventFilter;
}

/**
 * Reads committed events after a point, in the log's gap-safe read order (the engine's `readLogAfter`).
 * Both the `events` connection and subscription catch-up read through here, so one cursor means the same
 * place in both.
 */
export async function readEventPage<DB>(db: Kysely<DB>, options: ReadEventPageOptions): Promise<EventRow[]> {
  const page = await readLogAfter(db, {
    ...(options.after ? { after: options.after } : {}),
    limit: options.limit,
    ...(options.filter ? { filter: options.filter } : {}),
  });
  return page.rows;
}

/**
 * The newest point readable now (gap-safely): every event at or before it is committed and visible, and no
 * event can still appear before it. `LOG_START` for an empty log.
 */
export async function readLogHead<DB>(db: Kysely<DB>): Promise<LogPoint> {
  const { rows } = await sql<{ log_xid: string; position: string }>`
    select e.log_xid, e.position from outbox.events e
    where e.log_xid < pg_snapshot_xmin(pg_current_snapshot())
    order by e.log_xid desc, e.position desc
    limit 1`.execute(db);
  const row = rows[0];
  return row ? { logXid: row.log_xid, position: row.position } : LOG_START;
}

/** The in-memory twin of {@link readEventPage}'s filter, for events fanned out live. */
export function matchesFilter(event: RecordedEvent, filter: EventFilter): boolean {
  if (filter.types && filter.types.length > 0 && !filter.types.includes(event.type)) return false;
  if (filter.streamType && event.streamType !== filter.streamType) return false;
  if (filter.streamId && event.streamId !== filter.streamId) return false;
  if (filter.correlationId && event.metadata.correlationId !== filter.correlationId) return false;
  if (filter.from && event.occurredAt.getTime() < filter.from.getTime()) return false;
  if (filter.to && event.occurredAt.getTime() >= filter.to.getTime()) return false;
  return true;
}

/** Orders two log points: negative when `a` comes first. */
export function comparePoints(a: LogPoint, b: LogPoint): number {
  const xid = BigInt(a.logXid) - BigInt(b.logXid);
  if (xid !== 0n) return xid < 0n ? -1 : 1;
  const position = BigInt(a.position) - BigInt(b.position);
  return position === 0n ? 0 : position < 0n ? -1 : 1;
}
