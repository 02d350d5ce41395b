import type { Kysely } from 'kysely';
import type { RecordedEvent } from '../engine/index.ts';
import {
  type EventRegistry,
  type EventRow,
  type LogFilter,
  type LogPoint,
  readLogAfter,
  toRecordedEvent,
} from '../engine/index.ts';

export { comparePoints, readLogHead } from '../engine/index.ts';

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

const typeSets = new WeakMap<readonly string[], ReadonlySet<string>>();

/** A filter's types as a set, built once per filter: matching a live event is O(1) in the list's length. */
function typeSetOf(types: readonly string[]): ReadonlySet<string> {
  let set = typeSets.get(types);
  if (!set) {
    set = new Set(types);
    typeSets.set(types, set);
  }
  return set;
}

/** The in-memory twin of {@link readEventPage}'s filter, for events fanned out live. */
export function matchesFilter(event: RecordedEvent, filter: EventFilter): boolean {
  if (filter.types && filter.types.length > 0 && !typeSetOf(filter.types).has(event.type)) return false;
  if (filter.streamType && event.streamType !== filter.streamType) return false;
  if (filter.streamId && event.streamId !== filter.streamId) return false;
  if (filter.correlationId && event.metadata.correlationId !== filter.correlationId) return false;
  if (filter.from && event.occurredAt.getTime() < filter.from.getTime()) return false;
  if (filter.to && event.occurredAt.getTime() >= filter.to.getTime()) return false;
  return true;
}

/**
 * An event as the API serves it: upcast to its current schema — or, when its stored payload cannot be
 * (an upcaster threw), as stored, at its stored `schemaVersion`, with `upcastError` saying why.
 */
export type FeedEvent = RecordedEvent & { readonly upcastError?: string };

/**
 * `toRecordedEvent` that never throws for one bad event: the `events` connection and every subscription go
 * on past it (one event whose upcaster throws used to stall every subscription of every API process).
 */
export function toFeedEvent(row: EventRow, registry: EventRegistry): FeedEvent {
  try {
    return toRecordedEvent(row, registry);
  } catch (error) {
    return {
      ...toRecordedEvent(row),
      upcastError: `${row.type} version ${row.schema_version} could not be upcast: ${(error as Error).message}`,
    };
  }
}
