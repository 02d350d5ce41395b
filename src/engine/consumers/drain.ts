import { type ControlledTransaction, sql } from 'kysely';
import type { OutboxDatabase as Database, EngineDb as Db } from '../db/database.ts';
import { partitionLockArgs } from '../db/lock-keys.ts';
import { PREPARE } from '../db/prepared.ts';
import { HandlerTimeoutError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { READABLE_HORIZON } from '../outbox/horizon.ts';
import {
  comparePoints,
  type EventRegistry,
  type EventRow,
  eventColumns,
  toRecordedEvent,
} from '../outbox/read.ts';
import { type ConsumerDefinition, type HandlerContext, retryDelayMs } from './consumer.ts';
import { withHandlerSpan } from './handler-span.ts';

/** Outcome of one {@link drainPartition} call (one delivery transaction). */
export interface DrainResult {
  /**
   * `drained`: nothing more is ready; `more`: call again; `busy`: another drainer holds the partition;
   * `paused`: the consumer is paused; `unknown`: no such consumer partition in the database.
   */
  readonly status: 'drained' | 'more' | 'busy' | 'paused' | 'unknown';
  /** Events whose handler succeeded and committed. */
  readonly handled: number;
  /** Failures recorded in this transaction (retries scheduled or dead letters). */
  readonly failed: number;
  /** Earliest scheduled retry in this partition, if any. */
  readonly nextRetryAt: Date | undefined;
}

/** Options of {@link drainPartition}. */
export interface DrainOptions {
  readonly logger: Logger;
  /** Upcasts payloads to the current schema version before handlers see them. */
  readonly registry: EventRegistry;
  /** Reports each delivery (for metrics); never throws into the drain. */
  readonly onDelivery?: (outcome: DeliveryOutcome) => void;
}

/** One handler call, as reported to {@link DrainOptions.onDelivery}. */
export interface DeliveryOutcome {
  readonly consumer: string;
  readonly eventType: string;
  readonly ok: boolean;
  readonly durationMs: number;
  readonly deadLettered: boolean;
}

interface BlockedRow {
  stream_type: string;
  stream_id: string;
  event_position: string;
  stream_version: number;
  attempts: number;
  next_attempt_at: string | null;
  first_failed_at: string;
}

interface PartitionState {
  status: 'active' | 'paused';
  checkpoint_xid: string;
  checkpoint_position: string;
  blocked: BlockedRow[];
  has_redrives: boolean;
  /** Next new events after the checkpoint (JSON: occurred_at as an ISO string). */
  batch: Array<Omit<EventRow, 'occurred_at'> & { occurred_at: string }> | null;
  head: { logXid: string; position: string } | null;
}

interface RedriveRow extends EventRow {
  dead_letter_id: string;
  dead_attempts: number;
}

interface Failure {
  readonly error: Error;
  /** A timeout leaves the handler possibly still running: the transaction must be abandoned, not reused. */
  readonly poisonsTransaction: boolean;
}

/** Thrown inside a fast-mode batch to abandon it and rerun carefully. */
class RerunCarefully extends Error {
  /** The transaction must be rolled back entirely (a timed-out handler may still be using it). */
  readonly abandonTransaction: boolean;
  constructor(abandonTransaction: boolean) {
    super('rerun the batch with savepoints');
    this.abandonTransaction = abandonTransaction;
  }
}

const streamKey = (streamType: string, streamId: string): string => `${streamType}\u0000${streamId}`;

/**
 * How long a drain waits for its partition's lock before it reports `busy`. A careful rerun (after a handler
 * timed out and its transaction had to be abandoned) waits longer than any handler may take: otherwise a
 * drain queued on the lock takes the partition, calls the same hanging handler, and the failure is never
 * recorded (a livelock seen on PostgreSQL 15 in the timeout test).
 */
const LOCK_WAIT = '250ms';

/**
 * Handler failures this process has seen but not yet recorded (their transaction was abandoned). Shared by
 * all drains of the process, so a drain that takes over the partition does not call a known-failing handler
 * again for the same attempt; entries go when recorded, or after five minutes.
 */
const recentFailures = (() => {
  const entries = new Map<string, { failure: Failure; at: number }>();
  return {
    remember(consumer: string, eventId: string, failure: Failure): void {
      entries.set(`${consumer}:${eventId}`, { failure, at: Date.now() });
    },
    take(consumer: string, eventId: string, remove: boolean): Failure | undefined {
      const key = `${consumer}:${eventId}`;
      const entry = entries.get(key);
      if (!entry) return undefined;
      if (remove || Date.now() - entry.at > 300_000) entries.delete(key);
      return Date.now() - entry.at > 300_000 ? undefined : entry.failure;
    },
  };
})();

/**
 * Delivers the next batch of one consumer partition in ONE transaction: handler writes, appended events,
 * retry/dead-letter bookkeeping and the new checkpoint commit together, or not at all.
 *
 * Exclusivity: a transaction-scoped advisory lock per (consumer, partition); a second drainer gets `busy`.
 * (Advisory rather than a row lock: a row lock would give this transaction an xid before it reads, and its
 * own xid would then hold back the gap-safe read horizon.)
 *
 * Per-stream order: events are read in (log_xid, position) order, which within a stream is version order.
 * When an event fails, its stream is recorded in `outbox.blocked_streams` and every later event of that
 * stream is skipped by the normal scan (the checkpoint still moves on: other streams keep flowing). When
 * the retry succeeds, the stream is caught up from the failed version to the checkpoint, in version order.
 *
 * Speed: the batch first runs without a savepoint per handler. If any handler throws, the batch is rolled
 * back to a savepoint taken just after the lock, and rerun with a savepoint around each handler, skipping
 * the handlers already known to fail in this batch — so the common path pays nothing for failure isolation.
 */
export async function drainPartition(
  db: Db,
  consumer: ConsumerDefinition,
  partition: number,
  options: DrainOptions,
): Promise<DrainResult> {
  const knownFailures = new Map<string, Failure>();
  let careful = false;
  for (;;) {
    const trx = await db.startTransaction().execute();
    try {
      // A handler's slow query is cut at the handler timeout too (the JS timer alone cannot stop a query).
      // A partition held by another drainer is usually released within milliseconds (its batch commits):
      // wait for it up to LOCK_WAIT, rather than give up and come back later, which put whole re-queue
      // delays into the latency tail. (The select list is evaluated left to right: the timeouts are set
      // before the lock is requested.)
      //
      // The savepoint rides in the same round trip: without parameters the statement goes over pg's simple
      // protocol, which takes several statements at once. Every value inlined here is an integer or the
      // consumer's name (lower-case letters, digits, `-`, `_`; checked by defineConsumer) as a literal.
      const lockWait = careful ? `${Math.trunc(consumer.timeoutMs * 2 + 1000)}ms` : LOCK_WAIT;
      try {
        await sql
          .raw(
            `select set_config('statement_timeout', '${Math.trunc(consumer.timeoutMs)}', true),
                    set_config('lock_timeout', '${lockWait}', true),
                    pg_advisory_xact_lock(${partitionLockArgs(consumer.name, partition)});
             savepoint batch`,
          )
          .execute(trx);
      } catch (error) {
        if ((error as { code?: string }).code !== '55P03') throw error; // 55P03: lock_not_available
        await trx.rollback().execute();
        return { status: 'busy', handled: 0, failed: 0, nextRetryAt: undefined };
      }
      for (;;) {
        // The lock was taken before the savepoint `batch`: a rerun after a failure (rollback to it, which
        // keeps it) keeps the partition, so no other drainer can slip in and call the failed handler again
        // for the same attempt.
        const outcomes: DeliveryOutcome[] = [];
        try {
          const result = await runBatch(trx, consumer, partition, options, knownFailures, careful, outcomes);
          if (result.status === 'drained' || result.status === 'more') await trx.commit().execute();
          else await trx.rollback().execute();
          // Reported only once committed: a batch rerun after a failure must not count its deliveries twice.
          for (const outcome of outcomes) {
            try {
              options.onDelivery?.(outcome);
            } catch {
              // metrics must never break delivery
            }
          }
          return result;
        } catch (error) {
          if (!(error instanceof RerunCarefully) || error.abandonTransaction) throw error;
          careful = true;
          await sql`rollback to savepoint batch`.execute(trx);
        }
      }
    } catch (error) {
      await trx
        .rollback()
        .execute()
        .catch(() => undefined);
      if (error instanceof RerunCarefully) {
        // A timed-out handler may still be running with this transaction: it had to be abandoned whole (its
        // late queries now fail). The lock went with it; the rerun takes it again.
        careful = true;
        continue;
      }
      throw error;
    }
  }
}

async function runBatch(
  trx: ControlledTransaction<Database>,
  consumer: ConsumerDefinition,
  partition: number,
  options: DrainOptions,
  knownFailures: Map<string, Failure>,
  careful: boolean,
  outcomes: DeliveryOutcome[],
): Promise<DrainResult> {
  const idle = (status: DrainResult['status']): DrainResult => ({
    status,
    handled: 0,
    failed: 0,
    nextRetryAt: undefined,
  });
  // Read the state only now, in a statement that starts after the lock was granted: a snapshot taken
  // before could miss the previous drainer's checkpoint and deliver its events again.
  // Prepared: planning this statement cost more than running it; its plan does not depend on the
  // parameters (one consumer partition row, then index walks from its checkpoint).
  const { rows: stateRows } = await sql<PartitionState>`${sql.raw(PREPARE)}
    select set_config('lock_timeout', '0', true) as lock_timeout_reset, -- handlers wait for locks normally
      c.status, p.checkpoint_xid, p.checkpoint_position,
      coalesce((select json_agg(json_build_object(
                  'stream_type', b.stream_type, 'stream_id', b.stream_id, 'event_position', b.event_position::text,
                  'stream_version', b.stream_version, 'attempts', b.attempts, 'next_attempt_at', b.next_attempt_at,
                  'first_failed_at', b.first_failed_at))
                from outbox.blocked_streams b where b.consumer = c.name and b.partition = p.partition), '[]') as blocked,
      exists (select 1 from outbox.dead_letters d
              where d.consumer = c.name and d.partition = p.partition
                and d.redrive_requested_at is not null and d.redriven_at is null) as has_redrives,
      -- The next batch of new events, in the same round trip (read with this statement's snapshot, so
      -- gap-safe against the same horizon; delivered by deliverNew after any retries are dealt with).
      case when c.status = 'active' then (
        select coalesce(json_agg(json_build_object(
                 'position', e.position::text, 'id', e.id, 'transaction_id', e.transaction_id::text,
                 'log_xid', e.log_xid::text, 'stream_type', e.stream_type, 'stream_id', e.stream_id,
                 'stream_version', e.stream_version, 'type', e.type, 'schema_version', e.schema_version,
                 'payload', e.payload, 'metadata', e.metadata, 'occurred_at', e.occurred_at)
               order by e.log_xid, e.position), '[]')
        from (select * from outbox.events e
              where (e.log_xid, e.position) > (p.checkpoint_xid, p.checkpoint_position)
                and e.log_xid < ${sql.raw(READABLE_HORIZON)}
                and e.type = any (c.event_types)
                and (c.stream_types is null or e.stream_type = any (c.stream_types))
                and outbox.partition_of(e.stream_id, c.partitions) = p.partition
              order by e.log_xid, e.position
              limit ${consumer.batchSize}) e)
      end as batch,
      -- The last readable event of the whole log, seen by the same snapshot: when the batch is not full,
      -- every matching event up to it was in the batch, so the checkpoint may move there (a consumer of
      -- rare types then does not re-read the same non-matching events on every drain).
      (select json_build_object('logXid', h.log_xid::text, 'position', h.position::text)
       from outbox.events h where h.log_xid < ${sql.raw(READABLE_HORIZON)}
       order by h.log_xid desc, h.position desc limit 1) as head
    from outbox.consumers c join outbox.consumer_partitions p on p.consumer = c.name
    where c.name = ${consumer.name} and p.partition = ${partition}`.execute(trx);
  const state = stateRows[0];
  if (!state) return idle('unknown');
  if (state.status === 'paused') return idle('paused');

  const batch = new Batch(trx, consumer, partition, options, knownFailures, careful, state, outcomes);
  let more = false;
  if (state.has_redrives) more = (await batch.redrive()) || more;
  more = (await batch.retryDueStreams()) || more;
  const fresh = (state.batch ?? []).map((row) => ({ ...row, occurred_at: new Date(row.occurred_at) }));
  more = (await batch.deliverNew(fresh, state.head)) || more;
  await batch.saveCheckpoint();
  return {
    status: more ? 'more' : 'drained',
    handled: batch.handled,
    failed: batch.failed,
    nextRetryAt: batch.nextRetryAt(),
  };
}

/** The work of one delivery transaction. */
class Batch {
  handled = 0;
  failed = 0;
  private readonly blocked = new Map<string, BlockedRow>();
  private checkpoint: { logXid: string; position: string };
  private checkpointMoved = false;
  private savepointCounter = 0;
  private readonly trx: ControlledTransaction<Database>;
  private readonly consumer: ConsumerDefinition;
  private readonly partition: number;
  private readonly options: DrainOptions;
  private readonly knownFailures: Map<string, Failure>;
  private readonly careful: boolean;
  private readonly outcomes: DeliveryOutcome[];

  constructor(
    trx: ControlledTransaction<Database>,
    consumer: ConsumerDefinition,
    partition: number,
    options: DrainOptions,
    knownFailures: Map<string, Failure>,
    careful: boolean,
    state: PartitionState,
    outcomes: DeliveryOutcome[],
  ) {
    this.outcomes = outcomes;
    this.trx = trx;
    this.consumer = consumer;
    this.partition = partition;
    this.options = options;
    this.knownFailures = knownFailures;
    this.careful = careful;
    for (const row of state.blocked) this.blocked.set(streamKey(row.stream_type, row.stream_id), row);
    this.checkpoint = { logXid: state.checkpoint_xid, position: state.checkpoint_position };
  }

  /** Dead letters an operator asked to redrive, in stream order. Streams parked by `block` go through retries instead. */
  async redrive(): Promise<boolean> {
    const limit = this.consumer.batchSize;
    const { rows } = await sql<RedriveRow>`
      select ${eventColumns}, d.id::text as dead_letter_id, d.attempts as dead_attempts
      from outbox.dead_letters d join outbox.events e on e.position = d.event_position
      where d.consumer = ${this.consumer.name} and d.partition = ${this.partition}
        and d.redrive_requested_at is not null and d.redriven_at is null
        and not exists (select 1 from outbox.blocked_streams b
                        where b.consumer = d.consumer and b.event_position = d.event_position)
      order by e.stream_type, e.stream_id, e.stream_version
      limit ${limit}`.execute(this.trx);
    for (const row of rows) {
      const failure = await this.deliver(row, row.dead_attempts + 1);
      if (failure) {
        await sql`update outbox.dead_letters
                  set attempts = attempts + 1, last_error = ${failure.error.message},
                      error_stack = ${failure.error.stack ?? null}, redrive_requested_at = null, dead_at = now()
                  where id = ${row.dead_letter_id}`.execute(this.trx);
      } else {
        await sql`update outbox.dead_letters set redriven_at = now() where id = ${row.dead_letter_id}`.execute(
          this.trx,
        );
      }
    }
    return rows.length === limit;
  }

  /** Streams whose retry is due: the failed event, then the stream's later events up to the checkpoint. */
  async retryDueStreams(): Promise<boolean> {
    const now = Date.now();
    let more = false;
    const due = [...this.blocked.values()].filter(
      (row) => row.next_attempt_at !== null && Date.parse(row.next_attempt_at) <= now,
    );
    for (const block of due) {
      const limit = this.consumer.batchSize;
      const { rows } = await sql<EventRow>`
        select ${eventColumns} from outbox.events e
        where e.stream_type = ${block.stream_type} and e.stream_id = ${block.stream_id}
          and e.stream_version >= ${block.stream_version}
          and (e.log_xid, e.position) <= (${this.checkpoint.logXid}::xid8, ${this.checkpoint.position}::bigint)
          and e.type = any(${[...this.consumer.eventTypes]}::text[])
        order by e.stream_version
        limit ${limit}`.execute(this.trx);
      const key = streamKey(block.stream_type, block.stream_id);
      let stoppedAt: EventRow | undefined;
      for (const row of rows) {
        const isHead = row.position === block.event_position;
        const attempt = isHead ? block.attempts + 1 : 1;
        const failure = await this.deliver(row, attempt);
        if (failure) {
          const parked = await this.recordFailure(
            row,
            attempt,
            failure,
            isHead ? block.first_failed_at : undefined,
          );
          if (parked) {
            stoppedAt = row;
            break;
          }
        } else if (isHead) {
          // An operator's redrive of a stream parked by `block` succeeds here: close its dead letter.
          await sql`update outbox.dead_letters set redriven_at = now()
                    where consumer = ${this.consumer.name} and event_position = ${row.position}
                      and redriven_at is null`.execute(this.trx);
        }
      }
      if (stoppedAt) continue; // still blocked, at stoppedAt (recordFailure updated the row)
      const last = rows.at(-1);
      if (rows.length === limit && last) {
        // Not caught up yet: keep the stream blocked, due now, from the next version.
        await sql`update outbox.blocked_streams
                  set stream_version = ${last.stream_version + 1}, attempts = 0, next_attempt_at = now(),
                      event_position = coalesce((select e.position from outbox.events e
                        where e.stream_type = ${block.stream_type} and e.stream_id = ${block.stream_id}
                          and e.stream_version > ${last.stream_version}
                          and e.type = any(${[...this.consumer.eventTypes]}::text[])
                        order by e.stream_version limit 1), event_position)
                  where consumer = ${this.consumer.name} and stream_type = ${block.stream_type}
                    and stream_id = ${block.stream_id}`.execute(this.trx);
        more = true;
      } else {
        await sql`delete from outbox.blocked_streams
                  where consumer = ${this.consumer.name} and stream_type = ${block.stream_type}
                    and stream_id = ${block.stream_id}`.execute(this.trx);
        this.blocked.delete(key);
      }
    }
    return more;
  }

  /** New events after the checkpoint (read gap-safely with the state), skipping streams that are blocked. */
  async deliverNew(
    rows: readonly EventRow[],
    head: { logXid: string; position: string } | null,
  ): Promise<boolean> {
    const consumer = this.consumer;
    for (const row of rows) {
      if (this.blocked.has(streamKey(row.stream_type, row.stream_id))) continue; // waits behind its stream's failure
      const failure = await this.deliver(row, 1);
      if (failure) await this.recordFailure(row, 1, failure, undefined);
    }
    const last = rows.at(-1);
    if (last) {
      this.checkpoint = { logXid: last.log_xid, position: last.position };
      this.checkpointMoved = true;
    }
    const full = rows.length === consumer.batchSize;
    if (!full && head && comparePoints(head, this.checkpoint) > 0) {
      this.checkpoint = head;
      this.checkpointMoved = true;
    }
    return full;
  }

  async saveCheckpoint(): Promise<void> {
    if (!this.checkpointMoved && this.handled === 0) return;
    await sql`update outbox.consumer_partitions
              set checkpoint_xid = ${this.checkpoint.logXid}::xid8, checkpoint_position = ${this.checkpoint.position},
                  handled = handled + ${this.handled}, updated_at = now()
              where consumer = ${this.consumer.name} and partition = ${this.partition}`.execute(this.trx);
  }

  nextRetryAt(): Date | undefined {
    let next: number | undefined;
    for (const row of this.blocked.values()) {
      if (row.next_attempt_at === null) continue;
      const at = Date.parse(row.next_attempt_at);
      if (next === undefined || at < next) next = at;
    }
    return next === undefined ? undefined : new Date(next);
  }

  /**
   * Calls the handler. Returns the failure, or undefined on success. In fast mode a failure aborts the
   * batch (rerun carefully); in careful mode the handler's writes are undone by its savepoint.
   */
  private async deliver(row: EventRow, attempt: number): Promise<Failure | undefined> {
    const known = this.knownFailures.get(row.id) ?? recentFailures.take(this.consumer.name, row.id, false);
    if (known) {
      // Failed earlier in this batch, or in another drain of this process that lost the partition before it
      // could record it: not called twice for one attempt. The fast path reruns carefully to record it.
      if (!this.careful) throw new RerunCarefully(false);
      this.knownFailures.set(row.id, known);
      return known;
    }
    const started = performance.now();
    const savepoint = this.careful ? `d${++this.savepointCounter}` : undefined;
    if (savepoint) await sql.raw(`savepoint ${savepoint}`).execute(this.trx);
    const failure = await this.invoke(row, attempt);
    const durationMs = performance.now() - started;
    if (!failure) {
      if (savepoint) await sql.raw(`release savepoint ${savepoint}`).execute(this.trx);
      this.handled++;
      this.report(row, true, durationMs, false);
      return undefined;
    }
    this.knownFailures.set(row.id, failure);
    recentFailures.remember(this.consumer.name, row.id, failure);
    if (!this.careful || failure.poisonsTransaction) throw new RerunCarefully(failure.poisonsTransaction);
    await sql.raw(`rollback to savepoint ${savepoint}`).execute(this.trx);
    return failure;
  }

  private async invoke(row: EventRow, attempt: number): Promise<Failure | undefined> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.consumer.timeoutMs);
    });
    const parentTraceparent =
      typeof row.metadata.traceparent === 'string' ? row.metadata.traceparent : undefined;
    const attributes = {
      'postbox.consumer': this.consumer.name,
      'postbox.event_id': row.id,
      'postbox.event_type': row.type,
    };
    try {
      const event = toRecordedEvent(row, this.options.registry);
      const outcome = await withHandlerSpan(
        `${this.consumer.name} ${row.type}`,
        parentTraceparent,
        attributes,
        (traceparent) => {
          const context: HandlerContext = {
            consumer: this.consumer.name,
            attempt,
            idempotencyKey: `${this.consumer.name}:${row.id}`,
            signal: controller.signal,
            causedBy: {
              ...(typeof row.metadata.correlationId === 'string'
                ? { correlationId: row.metadata.correlationId }
                : {}),
              causationId: row.id,
              actor: `consumer:${this.consumer.name}`,
              ...(traceparent ? { traceparent } : {}),
            },
            logger: this.options.logger.child({
              consumer: this.consumer.name,
              eventId: row.id,
              eventType: row.type,
              ...(typeof row.metadata.correlationId === 'string'
                ? { correlationId: row.metadata.correlationId }
                : {}),
            }),
          };
          return Promise.race([this.consumer.handle(event as never, this.trx as never, context), timedOut]);
        },
      );
      if (outcome === 'timeout') {
        controller.abort();
        return {
          error: new HandlerTimeoutError(
            `${this.consumer.name} did not finish ${row.type} within ${this.consumer.timeoutMs} ms`,
          ),
          poisonsTransaction: true,
        };
      }
      return undefined;
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      // A query cancelled by statement_timeout (57014) means the handler hung in the database.
      return { error: err, poisonsTransaction: (error as { code?: string }).code === '57014' };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Records a failed attempt: schedules a retry with backoff (the stream stays blocked), or — when attempts
   * are used up — writes a dead letter and, per the consumer's policy, lets the stream continue or parks it.
   *
   * @returns true when the stream stays blocked at this event (its later events must wait).
   */
  private async recordFailure(
    row: EventRow,
    attempt: number,
    failure: Failure,
    firstFailedAt: string | undefined,
  ): Promise<boolean> {
    this.failed++;
    recentFailures.take(this.consumer.name, row.id, true);
    const policy = this.consumer.retry;
    const exhausted = attempt >= policy.maxAttempts;
    const message = failure.error.message.slice(0, 4000);
    const key = streamKey(row.stream_type, row.stream_id);
    this.options.logger.warn(
      {
        consumer: this.consumer.name,
        eventId: row.id,
        eventType: row.type,
        attempt,
        exhausted,
        err: failure.error,
      },
      exhausted ? 'handler failed; attempts exhausted' : 'handler failed; will retry',
    );
    if (exhausted) {
      await sql`insert into outbox.dead_letters
                  (consumer, partition, event_position, event_id, stream_type, stream_id, stream_version, event_type,
                   attempts, last_error, error_stack, first_failed_at)
                values (${this.consumer.name}, ${this.partition}, ${row.position}, ${row.id}, ${row.stream_type},
                        ${row.stream_id}, ${row.stream_version}, ${row.type}, ${attempt}, ${message},
                        ${failure.error.stack?.slice(0, 16_000) ?? null}, coalesce(${firstFailedAt ?? null}::timestamptz, now()))
                on conflict (consumer, event_position) where redriven_at is null
                do update set attempts = excluded.attempts, last_error = excluded.last_error,
                              error_stack = excluded.error_stack, dead_at = now(), redrive_requested_at = null`.execute(
        this.trx,
      );
      this.report(row, false, 0, true);
      if (this.consumer.onExhausted === 'dead_letter') {
        // The stream moves on. If it was blocked at this event, the caller's catch-up continues past it.
        return false;
      }
    } else {
      this.report(row, false, 0, false);
    }
    const nextAttemptAt = exhausted ? null : new Date(Date.now() + retryDelayMs(policy, attempt));
    await sql`insert into outbox.blocked_streams as b
                (consumer, stream_type, stream_id, partition, event_position, stream_version, attempts,
                 next_attempt_at, last_error, first_failed_at)
              values (${this.consumer.name}, ${row.stream_type}, ${row.stream_id}, ${this.partition}, ${row.position},
                      ${row.stream_version}, ${attempt}, ${nextAttemptAt}, ${message},
                      coalesce(${firstFailedAt ?? null}::timestamptz, now()))
              on conflict (consumer, stream_type, stream_id) do update
                set event_position = excluded.event_position, stream_version = excluded.stream_version,
                    attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at,
                    last_error = excluded.last_error, last_failed_at = now(),
                    first_failed_at = excluded.first_failed_at`.execute(this.trx);
    this.blocked.set(key, {
      stream_type: row.stream_type,
      stream_id: row.stream_id,
      event_position: row.position,
      stream_version: row.stream_version,
      attempts: attempt,
      next_attempt_at: nextAttemptAt?.toISOString() ?? null,
      first_failed_at: firstFailedAt ?? new Date().toISOString(),
    });
    return true;
  }

  /** Collects an outcome; drainPartition reports them once the transaction committed. */
  private report(row: EventRow, ok: boolean, durationMs: number, deadLettered: boolean): void {
    this.outcomes.push({ consumer: this.consumer.name, eventType: row.type, ok, durationMs, deadLettered });
  }
}
