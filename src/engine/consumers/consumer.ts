import type { Transaction } from 'kysely';
import type { OutboxDatabase } from '../db/database.ts';
import { CONSUMER_NAME } from '../db/lock-keys.ts';
import { DEFAULTS } from '../defaults.ts';
import { ValidationError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { EventDefinition, EventMetadata, RecordedEventOf } from '../outbox/event.ts';

/** Retry policy of a consumer. Delay of attempt n = min(maxDelayMs, initialDelayMs·2^(n-1)), ±jitter. */
export interface RetryPolicy {
  /** Attempts before the event is exhausted (dead-lettered or blocking). Default `8`. */
  readonly maxAttempts: number;
  /** Delay before the 2nd attempt. Default `1000` ms. */
  readonly initialDelayMs: number;
  /** Upper bound of a delay. Default `300000` ms (5 min). */
  readonly maxDelayMs: number;
  /** Random share of each delay, 0..1: a delay d becomes d·(1 − jitter·rand). Default `0.2`. */
  readonly jitter: number;
}

/** What a handler gets besides the event and the transaction. */
export interface HandlerContext {
  readonly consumer: string;
  /** 1 on the first delivery of this event to this consumer, then 2, 3… */
  readonly attempt: number;
  /**
   * Stable across redeliveries of this event to this consumer (`<consumer>:<event id>`): pass it to outside
   * systems (payment providers, mailers) so a redelivery after a crash does not act twice there.
   */
  readonly idempotencyKey: string;
  /** Aborted when the handler's timeout passes; the transaction is rolled back then. */
  readonly signal: AbortSignal;
  /** Metadata for events this handler appends: same correlation id, causation = this event. */
  readonly causedBy: EventMetadata;
  readonly logger: Logger;
}

/**
 * The delivery transaction as a handler sees it: a Kysely transaction typed for the application's own
 * database. Everything written through it commits together with the consumer's checkpoint.
 */
export type HandlerTransaction<DB = OutboxDatabase> = Transaction<DB>;

/** One event of a batch given to {@link ConsumerOptions.handleBatch}, with its own handler context. */
export interface BatchItem<E> {
  readonly event: E;
  /** As {@link ConsumerOptions.handle} would get it for this event (attempt, idempotency key, causedBy…). */
  readonly context: HandlerContext;
}

/**
 * Options of {@link defineConsumer}.
 *
 * @typeParam D - the event definitions subscribed to; a handler receives their discriminated union.
 * @typeParam DB - the application's Kysely database type, taken from the annotation of the handler's
 *   transaction parameter (`trx: Transaction<DB>`); the engine's own tables when it is not annotated.
 */
export interface ConsumerOptions<D extends EventDefinition, DB = OutboxDatabase> {
  /** Unique name: lower case letters, digits, `-`, `_` (e.g. `payment`). */
  readonly name: string;
  /** Event types delivered to this consumer. */
  readonly on: readonly D[];
  /** Only events of these stream types; default all. */
  readonly streamTypes?: readonly string[];
  /**
   * Partitions: a stream always maps to one, delivered in order; partitions run in parallel. Default `8`.
   * Fixed once the consumer exists (changing it would reorder streams in flight).
   */
  readonly partitions?: number;
  readonly retry?: Partial<RetryPolicy>;
  /** After max attempts: `dead_letter` (default) records the event and the stream continues; `block` keeps the stream waiting for an operator. */
  readonly onExhausted?: 'dead_letter' | 'block';
  /**
   * Where a consumer seen for the first time starts: `beginning` (default) or `now`. `now` is the gap-safe
   * horizon at registration: every event committed afterwards is delivered; so are the few committed just
   * before while an older transaction (in any database of the server) was still open — never one lost.
   */
  readonly startFrom?: 'beginning' | 'now';
  /** Events handled per delivery transaction. Default `100`. */
  readonly batchSize?: number;
  /**
   * Also caps a delivery transaction's events by their stored size (payload and metadata as Postgres
   * stores them, possibly compressed), bytes; a single larger event still goes alone. Keeps a batch of big
   * events within what Postgres and V8 can build and parse. Default `16777216` (16 MiB).
   */
  readonly batchBytes?: number;
  /** A handler call taking longer fails (and is retried). Default `30000` ms. */
  readonly timeoutMs?: number;
  /**
   * Commit delivery transactions without waiting for their WAL flush (`synchronous_commit = off` for
   * those transactions only). Each commit then costs the database no flush wait, which leaves more of it
   * to the application's writers while the consumer keeps up with them. Default `false`.
   *
   * What it gives up: if the database server crashes (not the application), the delivery transactions of
   * its last few hundred ms (up to 3 × `wal_writer_delay`) are lost — the handler's writes and the
   * checkpoint together, never one without the other — and those events are delivered again. Safe for
   * handlers whose writes only they read: projections, read models, counters, caches. Not for handlers
   * that append events or whose writes other transactions act on durably (a lost transaction's writes were
   * visible before the crash), nor for handlers that call other systems.
   */
  readonly asyncCommit?: boolean;
  /**
   * Handles one event. Runs inside the delivery transaction: its writes, the consumer's checkpoint and any
   * events it appends commit together, so a crash means redelivery and never a half-done effect. Throwing
   * rolls back its writes and schedules a retry. Give exactly one of `handle` and {@link handleBatch}.
   */
  handle?(event: RecordedEventOf<D>, trx: HandlerTransaction<DB>, context: HandlerContext): Promise<void>;
  /**
   * Handles every new event of a delivery batch in one call (instead of {@link handle}), in log order — so
   * each stream's events in version order — inside the batch's transaction: its writes, the events it
   * appends and the checkpoint commit together, exactly as with `handle`. For handlers whose per-event round
   * trips dominate: one statement can then lock, read or write the rows of the whole batch. Rows locked
   * across a batch must be locked in one global order (e.g. by primary key), or two partitions' batches can
   * deadlock.
   *
   * Failures still name one event: when the call throws (or times out: `timeoutMs` applies to the whole
   * call), its writes are rolled back and the batch runs again with one call per event (`items` of length
   * 1, each behind a savepoint), so a retry or dead letter records the event that fails and the others
   * commit. Retries, redrives and a stream's catch-up after a retry are also delivered one event per call.
   * A single event is delivered alone too. Not for consumers that act outside the database.
   */
  handleBatch?(items: readonly BatchItem<RecordedEventOf<D>>[], trx: HandlerTransaction<DB>): Promise<void>;
}

/** A consumer, with defaults applied. */
export interface ConsumerDefinition {
  readonly name: string;
  readonly eventTypes: readonly string[];
  readonly definitions: readonly EventDefinition[];
  readonly streamTypes: readonly string[] | undefined;
  readonly partitions: number;
  readonly retry: RetryPolicy;
  readonly onExhausted: 'dead_letter' | 'block';
  readonly startFrom: 'beginning' | 'now';
  readonly batchSize: number;
  readonly batchBytes: number;
  readonly timeoutMs: number;
  /** Delivery transactions commit without waiting for their WAL flush (see {@link ConsumerOptions.asyncCommit}). */
  readonly asyncCommit: boolean;
  /**
   * The handler acts outside the database (a destination's HTTP request): each event runs behind its own
   * savepoint from the start (a failure never reruns the batch, which would send its deliveries again), a
   * batch ends at its first recorded failure (so the transaction does not hold an xid — and with it the
   * log's readable horizon — across further requests), and {@link DeliveryDeferred} is honoured.
   * Default `false`.
   */
  readonly deliversOutside?: boolean;
  /** Typed by the definition it came from; the engine calls it with the event and the delivery transaction. */
  readonly handle: (event: never, trx: never, context: HandlerContext) => Promise<void>;
  /**
   * The definition's {@link ConsumerOptions.handleBatch}, when it gave one (then {@link handle} calls it
   * with one event). Typed by the definition it came from.
   */
  readonly handleBatch?: (items: readonly BatchItem<never>[], trx: never) => Promise<void>;
}

/** Declares a consumer; see {@link ConsumerOptions}. Pass it to `startPostbox({ consumers })`. */
export function defineConsumer<D extends EventDefinition, DB = OutboxDatabase>(
  options: ConsumerOptions<D, DB>,
): ConsumerDefinition {
  if (!CONSUMER_NAME.test(options.name)) {
    throw new ValidationError(`Consumer name "${options.name}" must match ${CONSUMER_NAME}`, 'name');
  }
  if (options.on.length === 0)
    throw new ValidationError(`Consumer ${options.name} subscribes to no event type`, 'on');
  const { handleBatch } = options;
  if ((options.handle === undefined) === (handleBatch === undefined)) {
    throw new ValidationError(
      `Consumer ${options.name}: give exactly one of handle and handleBatch`,
      options.handle === undefined ? 'handle' : 'handleBatch',
    );
  }
  // A batch handler is also the per-event handler: one event, one item.
  const handle =
    options.handle ??
    ((event: RecordedEventOf<D>, trx: HandlerTransaction<DB>, context: HandlerContext) =>
      (handleBatch as NonNullable<typeof handleBatch>)([{ event, context }], trx));
  const defaults = DEFAULTS.consumer;
  const partitions = options.partitions ?? defaults.partitions;
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 256) {
    throw new ValidationError(`Consumer ${options.name}: partitions must be 1..256`, 'partitions');
  }
  const retry: RetryPolicy = {
    maxAttempts: options.retry?.maxAttempts ?? defaults.retry.maxAttempts,
    initialDelayMs: options.retry?.initialDelayMs ?? defaults.retry.initialDelayMs,
    maxDelayMs: options.retry?.maxDelayMs ?? defaults.retry.maxDelayMs,
    jitter: options.retry?.jitter ?? defaults.retry.jitter,
  };
  if (
    !Number.isInteger(retry.maxAttempts) ||
    retry.maxAttempts < 1 ||
    !(retry.initialDelayMs >= 0) ||
    !(retry.maxDelayMs >= retry.initialDelayMs)
  ) {
    throw new ValidationError(`Consumer ${options.name}: invalid retry policy`, 'retry');
  }
  const batchSize = options.batchSize ?? defaults.batchSize;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 5000) {
    throw new ValidationError(`Consumer ${options.name}: batchSize must be an integer 1..5000`, 'batchSize');
  }
  const batchBytes = options.batchBytes ?? defaults.batchBytes;
  if (!Number.isInteger(batchBytes) || batchBytes < 1) {
    throw new ValidationError(
      `Consumer ${options.name}: batchBytes must be a positive integer`,
      'batchBytes',
    );
  }
  const timeoutMs = options.timeoutMs ?? defaults.timeoutMs;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 10) {
    throw new ValidationError(`Consumer ${options.name}: timeoutMs must be a number of ms ≥ 10`, 'timeoutMs');
  }
  if (!(retry.jitter >= 0 && retry.jitter <= 1))
    throw new ValidationError('retry.jitter must be within 0..1', 'retry.jitter');
  return Object.freeze({
    name: options.name,
    eventTypes: [...new Set(options.on.map((definition) => definition.type))],
    definitions: [...options.on],
    streamTypes: options.streamTypes ? [...options.streamTypes] : undefined,
    partitions,
    retry,
    onExhausted: options.onExhausted ?? defaults.onExhausted,
    startFrom: options.startFrom ?? defaults.startFrom,
    batchSize,
    batchBytes,
    timeoutMs,
    asyncCommit: options.asyncCommit ?? defaults.asyncCommit,
    handle: handle as ConsumerDefinition['handle'],
    ...(handleBatch ? { handleBatch: handleBatch as NonNullable<ConsumerDefinition['handleBatch']> } : {}),
  });
}

/** Delay before attempt `attempt + 1`, after `attempt` failures. */
export function retryDelayMs(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (1 - policy.jitter * random()));
}
