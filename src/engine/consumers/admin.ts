import { type Kysely, type Selectable, sql } from 'kysely';
import { engineView } from '../db/database.ts';
import { partitionLockArgs } from '../db/lock-keys.ts';
import { NotFoundError, ValidationError } from '../errors.ts';
import type { ConsumerLagView, DeadLettersTable } from '../outbox/outbox.tables.ts';
import { WAKE_CHANNEL } from '../outbox/wake-channel.ts';

type Executor = Parameters<ReturnType<typeof sql>['execute']>[0];

/** A consumer's status summed over its partitions. */
export interface ConsumerSummary {
  readonly name: string;
  readonly status: 'active' | 'paused';
  readonly partitions: number;
  /** Events not yet delivered. */
  readonly lag: number;
  /** Age of the oldest undelivered event, ms (0 when none). */
  readonly oldestPendingMs: number;
  /** Streams waiting on a scheduled retry. */
  readonly retrying: number;
  /** Streams parked until an operator acts (`onExhausted: 'block'`). */
  readonly blocked: number;
  readonly deadLetters: number;
  readonly handled: number;
}

/** Per-consumer summary from `outbox.consumer_lag`. */
export async function listConsumers<DB>(db: Kysely<DB>): Promise<ConsumerSummary[]> {
  const rows = await engineView(db)
    .selectFrom('outbox.consumer_lag')
    .selectAll()
    .orderBy('consumer')
    .orderBy('partition')
    .execute();
  const byName = new Map<string, ConsumerLagView[]>();
  for (const row of rows) byName.set(row.consumer, [...(byName.get(row.consumer) ?? []), row]);
  const now = Date.now();
  return [...byName.entries()].map(([name, parts]) => {
    const sum = (pick: (row: ConsumerLagView) => string) =>
      parts.reduce((total, row) => total + Number(pick(row)), 0);
    const oldest = parts
      .map((row) => row.oldest_pending_at?.getTime())
      .filter((t): t is number => t !== undefined);
    return {
      name,
      status: parts[0]?.status ?? 'active',
      partitions: parts.length,
      lag: sum((row) => row.lag),
      oldestPendingMs: oldest.length ? Math.max(0, now - Math.min(...oldest)) : 0,
      retrying: sum((row) => row.retrying),
      blocked: sum((row) => row.blocked),
      deadLetters: sum((row) => row.dead_letters),
      handled: sum((row) => row.handled),
    };
  });
}

/** Stops delivery to a consumer (in-flight batches finish); events keep accumulating. */
export async function pauseConsumer<DB>(db: Kysely<DB>, name: string): Promise<void> {
  await setStatus(db, name, 'paused');
}

/** Resumes a paused consumer from its checkpoints. */
export async function resumeConsumer<DB>(db: Kysely<DB>, name: string): Promise<void> {
  await setStatus(db, name, 'active');
}

async function setStatus<DB>(db: Kysely<DB>, name: string, status: 'active' | 'paused'): Promise<void> {
  await engineView(db)
    .transaction()
    .execute(async (trx) => {
      const result = await trx
        .updateTable('outbox.consumers')
        .set({ status, updated_at: new Date() })
        .where('name', '=', name)
        .executeTakeFirst();
      if (result.numUpdatedRows === 0n) throw new NotFoundError(`No consumer named ${name}`);
      await requestPoll(trx);
    });
}

/** Options of {@link replayConsumer}. */
export interface ReplayOptions {
  /** Re-deliver the events after this position (in log order). Omitted or `'0'`: from the beginning of the log. */
  readonly afterPosition?: string;
}

/** What {@link replayConsumer} did with the consumer's failures. */
export interface ReplayResult {
  /**
   * Blocked streams whose failed event is at or before the replay point: kept as they were (retrying, or
   * parked until a redrive). The replay does not reach them, so they still deliver the failed event and the
   * events waiting behind it, in order.
   */
  readonly keptBlockedStreams: number;
  /**
   * Blocked streams whose failed event is after the replay point: released, because the replay delivers
   * that event (from attempt 1) and everything after it in the stream again, in order.
   */
  readonly releasedBlockedStreams: number;
  /**
   * Open dead letters of the consumer, untouched: a replay never closes or deletes one. Those of events
   * after the point stay open even if the replayed delivery succeeds; redrive or ignore them.
   */
  readonly openDeadLetters: number;
}

/**
 * Rewinds every partition of a consumer so the events after a position (or all events) are delivered
 * again, in order. Waits for in-flight batches (takes each partition's drain lock). Nothing that failed is
 * dropped: a stream blocked at an event the replay does not reach stays blocked (its event and those
 * behind it are still delivered); one blocked at an event the replay reaches is released (the replay
 * delivers it again); dead letters stay open. The result says how many of each. Handlers must tolerate
 * seeing events again: that is what a replay is.
 */
export async function replayConsumer<DB>(
  db: Kysely<DB>,
  name: string,
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  return engineView(db)
    .transaction()
    .execute(async (trx) => {
      const consumer = await trx
        .selectFrom('outbox.consumers')
        .select(['partitions'])
        .where('name', '=', name)
        .executeTakeFirst();
      if (!consumer) throw new NotFoundError(`No consumer named ${name}`);
      const point = await replayPoint(trx, options);
      for (let partition = 0; partition < consumer.partitions; partition++) {
        await sql`select pg_advisory_xact_lock(${sql.raw(partitionLockArgs(name, partition))})`.execute(trx);
      }
      await sql`update outbox.consumer_partitions
              set checkpoint_xid = ${point.logXid}::xid8, checkpoint_position = ${point.position}, updated_at = now()
              where consumer = ${name}`.execute(trx);
      // Streams blocked at an event after the point: the replay reaches that event again, in stream order.
      const { rows: released } = await sql<{ n: number }>`
        with released as (
          delete from outbox.blocked_streams b using outbox.events e
          where b.consumer = ${name} and e.position = b.event_position
            and (e.log_xid, e.position) > (${point.logXid}::xid8, ${point.position}::bigint)
          returning 1)
        select count(*)::int as n from released`.execute(trx);
      const { rows: counts } = await sql<{ kept: number; dead: number }>`
        select (select count(*) from outbox.blocked_streams where consumer = ${name})::int as kept,
               (select count(*) from outbox.dead_letters
                where consumer = ${name} and redriven_at is null)::int as dead`.execute(trx);
      await requestPoll(trx);
      return {
        keptBlockedStreams: counts[0]?.kept ?? 0,
        releasedBlockedStreams: released[0]?.n ?? 0,
        openDeadLetters: counts[0]?.dead ?? 0,
      };
    });
}

/** What {@link previewReplay} says a replay would re-deliver now. */
export interface ReplayPreview {
  /** Committed events of the consumer's types (and stream types) after the position. */
  readonly events: number;
  /** Distinct streams among them. */
  readonly streams: number;
  /** Position of the first and the last of them (`null` when there are none). */
  readonly firstPosition: string | null;
  readonly lastPosition: string | null;
  /** The event types the consumer handles. */
  readonly eventTypes: readonly string[];
}

/**
 * What {@link replayConsumer} with the same options would re-deliver if it ran now: the consumer's events
 * after the position, in the log's read order (events appended later are delivered too, as new ones). Read
 * only; `NotFoundError` for an unknown consumer or a position with no event.
 */
export async function previewReplay<DB>(
  db: Kysely<DB>,
  name: string,
  options: ReplayOptions = {},
): Promise<ReplayPreview> {
  const view = engineView(db);
  const consumer = await view
    .selectFrom('outbox.consumers')
    .select(['event_types', 'stream_types'])
    .where('name', '=', name)
    .executeTakeFirst();
  if (!consumer) throw new NotFoundError(`No consumer named ${name}`);
  const point = await replayPoint(view, options);
  const { rows } = await sql<{ events: string; streams: string; first: string | null; last: string | null }>`
    select count(*)::text as events, count(distinct (e.stream_type, e.stream_id))::text as streams,
           min(e.position)::text as first, max(e.position)::text as last
    from outbox.events e
    where (e.log_xid, e.position) > (${point.logXid}::xid8, ${point.position}::bigint)
      and e.type = any (${consumer.event_types}::text[])
      and (${consumer.stream_types}::text[] is null or e.stream_type = any (${consumer.stream_types}::text[]))`.execute(
    view,
  );
  const row = rows[0];
  return {
    events: Number(row?.events ?? 0),
    streams: Number(row?.streams ?? 0),
    firstPosition: row?.first ?? null,
    lastPosition: row?.last ?? null,
    eventTypes: consumer.event_types,
  };
}

/** The checkpoint a replay rewinds to: just before the event after `afterPosition` (or the log's start). */
async function replayPoint(
  executor: Executor,
  options: ReplayOptions,
): Promise<{ logXid: string; position: string }> {
  if (options.afterPosition === undefined || options.afterPosition === '0')
    return { logXid: '0', position: '0' };
  if (!/^\d{1,19}$/.test(options.afterPosition))
    throw new ValidationError('position must be a whole number', 'position');
  const { rows } = await sql<{ log_xid: string; position: string }>`
    select log_xid::text, position::text from outbox.events where position = ${options.afterPosition}`.execute(
    executor,
  );
  const row = rows[0];
  if (!row) throw new NotFoundError(`No event at position ${options.afterPosition}`);
  return { logXid: row.log_xid, position: row.position };
}

/** Which dead letters to redrive. */
export interface RedriveOptions {
  /** Only these dead letter ids; default all open ones of the consumer. */
  readonly ids?: readonly string[];
}

/**
 * Asks for open dead letters to be delivered again, in stream order. For streams parked by
 * `onExhausted: 'block'`, the stream is released: its failed event, then the events that waited behind it.
 *
 * @returns how many dead letters were queued for redrive.
 */
export async function redriveDeadLetters<DB>(
  db: Kysely<DB>,
  name: string,
  options: RedriveOptions = {},
): Promise<number> {
  return engineView(db)
    .transaction()
    .execute(async (trx) => {
      const { rows } = await sql<{ event_position: string; stream_type: string; stream_id: string }>`
      update outbox.dead_letters set redrive_requested_at = now()
      where consumer = ${name} and redriven_at is null
        ${options.ids ? sql`and id = any(${[...options.ids]}::bigint[])` : sql``}
      returning event_position::text, stream_type, stream_id`.execute(trx);
      for (const row of rows) {
        await sql`update outbox.blocked_streams set next_attempt_at = now(), attempts = 0
                where consumer = ${name} and stream_type = ${row.stream_type} and stream_id = ${row.stream_id}
                  and event_position = ${row.event_position} and next_attempt_at is null`.execute(trx);
      }
      await requestPoll(trx);
      return rows.length;
    });
}

/** An open dead letter, as {@link listDeadLetters} returns it. */
export type DeadLetter = Selectable<DeadLettersTable>;

/** Open dead letters of a consumer (or all consumers), oldest first. */
export async function listDeadLetters<DB>(db: Kysely<DB>, consumer?: string): Promise<DeadLetter[]> {
  let query = engineView(db).selectFrom('outbox.dead_letters').selectAll().where('redriven_at', 'is', null);
  if (consumer) query = query.where('consumer', '=', consumer);
  return query.orderBy('id').execute();
}

/** Wakes the relay leader for an immediate poll when the transaction commits. */
async function requestPoll(executor: Executor): Promise<void> {
  await sql`select pg_notify(${WAKE_CHANNEL}, 'poll')`.execute(executor);
}
