import type { RecordedEvent } from '../../engine/index.ts';
import { decodeCursor, encodeCursor, type LogPoint, pointOf, ValidationError } from '../../engine/index.ts';
import { builder } from '../builder.ts';
import { type EventFilter, type FeedEvent, readEventPage, readLogHead, toFeedEvent } from '../event-log.ts';
import { SCOPES_TO_READ_EVENTS } from './scopes.ts';

/** An event of the log, as the API shows it. */
export const EventRef = builder.objectRef<RecordedEvent>('Event').implement({
  description:
    "An event of the log. `cursor` marks its place in the log's read order: pass it as `after` to the `events` " +
    'connection or subscription to continue right after it.',
  fields: (t) => ({
    id: t.exposeID('id'),
    cursor: t.string({
      description: 'Opaque; the same in the `events` connection and subscription.',
      resolve: (event) => encodeCursor(pointOf(event)),
    }),
    position: t.exposeString('position', {
      description:
        'Global position (a 64-bit integer as a string). Increasing, but not commit order: use cursors to resume.',
    }),
    type: t.exposeString('type'),
    streamType: t.exposeString('streamType'),
    streamId: t.exposeString('streamId'),
    streamVersion: t.exposeInt('streamVersion', { description: '1, 2, 3… within the stream.' }),
    schemaVersion: t.exposeInt('schemaVersion'),
    payload: t.field({ type: 'JSON', resolve: (event) => event.payload }),
    metadata: t.field({
      type: 'JSON',
      description: 'correlationId, causationId, actor…',
      resolve: (event) => event.metadata,
    }),
    correlationId: t.string({
      nullable: true,
      description: "Shared by every event one request caused (the request's `x-correlation-id`).",
      resolve: (event) =>
        typeof event.metadata.correlationId === 'string' ? event.metadata.correlationId : null,
    }),
    occurredAt: t.field({ type: 'DateTime', resolve: (event) => event.occurredAt }),
    upcastError: t.string({
      nullable: true,
      description:
        'Set when the stored payload could not be brought to the current schema (its upcaster threw): ' +
        '`payload` and `schemaVersion` are then the stored ones. The events after it are served as usual.',
      resolve: (event) => (event as FeedEvent).upcastError ?? null,
    }),
  }),
});

/** Filter of the `events` connection and subscription. */
export const EventFilterInput = builder.inputType('EventFilter', {
  description: 'Every given condition must hold.',
  fields: (t) => ({
    types: t.stringList({ required: false, description: 'Any of these event types (at most 100).' }),
    streamType: t.string({ required: false }),
    streamId: t.string({ required: false }),
    correlationId: t.string({ required: false }),
    from: t.field({ type: 'DateTime', required: false, description: 'occurredAt >= from.' }),
    to: t.field({ type: 'DateTime', required: false, description: 'occurredAt < to.' }),
  }),
});

/** Most event types one filter may list. */
export const MAX_FILTER_TYPES = 100;
/** Longest string of a filter (event types are ≤ 128 characters, correlation ids ≤ 128, stream ids ≤ 200). */
export const MAX_FILTER_STRING = 200;

/**
 * Turns the GraphQL filter argument into the read side's filter, refusing oversized ones
 * ({@link MAX_FILTER_TYPES} types, {@link MAX_FILTER_STRING} characters per string).
 */
export function toEventFilter(
  input:
    | {
        types?: readonly string[] | null;
        streamType?: string | null;
        streamId?: string | null;
        correlationId?: string | null;
        from?: Date | null;
        to?: Date | null;
      }
    | null
    | undefined,
): EventFilter {
  // Bounded before anything is read or registered: a live subscription keeps its filter for its lifetime.
  if (input?.types && input.types.length > MAX_FILTER_TYPES) {
    throw new ValidationError(`filter.types: at most ${MAX_FILTER_TYPES} event types`, 'filter.types');
  }
  for (const type of input?.types ?? []) {
    if (type.length > MAX_FILTER_STRING) {
      throw new ValidationError(
        `filter.types: an event type has at most ${MAX_FILTER_STRING} characters`,
        'filter.types',
      );
    }
  }
  for (const field of ['streamType', 'streamId', 'correlationId'] as const) {
    const value = input?.[field];
    if (value && value.length > MAX_FILTER_STRING) {
      throw new ValidationError(
        `filter.${field}: at most ${MAX_FILTER_STRING} characters`,
        `filter.${field}`,
      );
    }
  }
  return {
    ...(input?.types ? { types: input.types } : {}),
    ...(input?.streamType ? { streamType: input.streamType } : {}),
    ...(input?.streamId ? { streamId: input.streamId } : {}),
    ...(input?.correlationId ? { correlationId: input.correlationId } : {}),
    ...(input?.from ? { from: input.from } : {}),
    ...(input?.to ? { to: input.to } : {}),
  };
}

/** Parses an `after` argument (undefined when absent). */
export function parseAfter(after: string | null | undefined, field = 'after'): LogPoint | undefined {
  if (!after) return undefined;
  const point = decodeCursor(after, field);
  // Positions are int8 and transaction ids xid8 (unsigned 64-bit): larger numbers would fail in Postgres.
  if (BigInt(point.position) > INT8_MAX || BigInt(point.logXid) > XID8_MAX) {
    throw new ValidationError(`${field} is not a valid cursor`, field);
  }
  return point;
}

/** Largest int8. */
export const INT8_MAX = 2n ** 63n - 1n;
const XID8_MAX = 2n ** 64n - 1n;

/** Page size bounds of connections. */
export function pageSize(first: number | null | undefined, fallback = 50, max = 500): number {
  if (first === null || first === undefined) return fallback;
  if (!Number.isInteger(first) || first < 0 || first > max) {
    throw new ValidationError(`first must be between 0 and ${max}`, 'first');
  }
  return first;
}

const EventConnection = builder.connectionObject(
  {
    type: EventRef,
    name: 'EventConnection',
    description: "Events in the log's gap-safe read order (the order subscriptions deliver them in).",
  },
  { name: 'EventEdge' },
);

builder.queryFields((t) => ({
  events: t.field({
    type: EventConnection,
    authScopes: SCOPES_TO_READ_EVENTS,
    description:
      'Committed events after `after` (or from the start of the log), oldest first, in gap-safe read order: ' +
      'a page never skips an event that commits later. Continue with `pageInfo.endCursor`, or subscribe ' +
      'with it to get what comes next.',
    args: {
      first: t.arg.int({ required: false, description: 'Page size, 0–500. Default 50.' }),
      after: t.arg.string({ required: false }),
      filter: t.arg({ type: EventFilterInput, required: false }),
    },
    resolve: async (_root, args, context) => {
      const first = pageSize(args.first);
      const after = parseAfter(args.after);
      const rows =
        first === 0
          ? []
          : await readEventPage(context.db, {
              ...(after ? { after } : {}),
              limit: first + 1,
              filter: toEventFilter(args.filter),
            });
      const edges = rows.slice(0, first).map((row) => {
        const node = toFeedEvent(row, context.registry);
        return { cursor: encodeCursor(pointOf(node)), node };
      });
      return {
        edges,
        pageInfo: {
          hasNextPage: rows.length > first,
          hasPreviousPage: after !== undefined,
          startCursor: edges[0]?.cursor ?? null,
          endCursor: edges.at(-1)?.cursor ?? null,
        },
      };
    },
  }),
  logHead: t.string({
    nullable: true,
    authScopes: SCOPES_TO_READ_EVENTS,
    description:
      'Cursor of the newest event readable now (null for an empty log). Subscribe to `events(after: logHead)` ' +
      "to get everything that happens from here on, without racing the subscription's start.",
    resolve: async (_root, _args, context) => {
      const head = await readLogHead(context.db);
      return head.position === '0' ? null : encodeCursor(head);
    },
  }),
}));
