import { type ControlledTransaction, sql } from 'kysely';
import type { OutboxDatabase } from '../db/database.ts';
import { DEFAULTS } from '../defaults.ts';
import { comparePoints, type EventRow, type LogPoint } from '../outbox/read.ts';
import { advanceBlockedStream, blockStream, releaseStream } from '../sql/blocked-streams.ts';
import {
  closeDeadLetter,
  closeDeadLetterOfEvent,
  failRedrive,
  recordDeadLetter,
} from '../sql/dead-letters.ts';
import type { BlockedRow, PartitionState } from '../sql/read-partition-state.ts';
import { readRedrives } from '../sql/read-redrives.ts';
import { readStreamBacklog } from '../sql/read-stream-backlog.ts';
import { saveCheckpoint } from '../sql/save-checkpoint.ts';
import { type ConsumerDefinition, retryDelayMs } from './consumer.ts';
import type { DeliveryOutcome, DrainOptions } from './delivery-outcome.ts';
import { type Failure, RerunCarefully, recentFailures } from './failures.ts';
import { invokeBatchHandler } from './invoke-batch-handler.ts';
import { invokeHandler } from './invoke-handler.ts';

const streamKey = (streamType: string, streamId: string): string => `${streamType}\u0000${streamId}`;

/**
 * Handlers one careful (savepoint per handler) transaction runs at most. Each released savepoint of a
 * writing handler keeps a subtransaction id; past 64 in one transaction Postgres's per-backend cache
 * overflows and every snapshot in the cluster gets slower while it runs. The rest of the batch goes to the
 * next transaction.
 */
const CAREFUL_HANDLERS_PER_TRANSACTION = 50;

/** Longest error message and stack stored with a failure (the rest is cut). */
const MAX_ERROR_CHARS = 4000;
const MAX_STACK_CHARS = 16_000;
/** Longest wait a handler's `retryAfterMs` (an HTTP `Retry-After`) may impose, ms. */
const MAX_RETRY_AFTER_MS = 3_600_000;

/** What a {@link Batch} works in and for. */
export interface BatchContext {
  readonly trx: ControlledTransaction<OutboxDatabase>;
  readonly consumer: ConsumerDefinition;
  readonly partition: number;
  readonly options: DrainOptions;
  /** Failures seen earlier in this delivery (across a careful rerun), by event id. */
  readonly knownFailures: Map<string, Failure>;
  /** A savepoint around every handler (after a failure), instead of none (the fast path). */
  readonly careful: boolean;
  /** Handler outcomes, reported by the caller once the transaction committed. */
  readonly outcomes: DeliveryOutcome[];
}

/**
 * The work of one delivery transaction on one consumer partition: requested redrives, due retries, then new
 * events after the checkpoint; failures recorded as retries, blocked streams or dead letters; and the new
 * checkpoint. Per-stream order: a failed event blocks its stream (its later events are skipped by the scan
 * and caught up, in version order, when the retry succeeds); other streams keep flowing.
 *
 * Timeouts: handlers' statements run under the consumer's `timeoutMs`, the engine's own under
 * `DrainOptions.statementTimeoutMs`. The transaction-local `statement_timeout` is switched only when the
 * kind of statement changes: on the common path, once per batch (back to the engine's, before the
 * checkpoint); `readPartitionState` set the handlers' one.
 */
export class Batch {
  handled = 0;
  failed = 0;
  /**
   * The batch stopped before an event that only another live definition of the consumer handles (a
   * rolling deploy): the partition is left for the code that has it.
   */
  handOver = false;
  readonly #context: BatchContext;
  readonly #blocked = new Map<string, BlockedRow>();
  #checkpoint: LogPoint;
  #checkpointMoved = false;
  #savepointCounter = 0;
  /** Set when a handler deferred (see `DeliveryDeferred`): the partition waits until then. */
  #deferredUntil: Date | undefined;
  /** A consumer delivering outside ended this batch early (a recorded failure, or a deferral). */
  #stopped = false;
  /** Whose `statement_timeout` is in force: the handlers' (set by readPartitionState) or the engine's. */
  #timeoutOf: 'handler' | 'engine' = 'handler';
  /**
   * The database's clock minus this process's, ms. Retry times are stored and compared on the database's
   * clock (the relay's poll and graphile-worker compare them with `now()`): a host with a drifting clock
   * must not postpone or hurry them.
   */
  readonly clockOffsetMs: number;
  /** The database's clock when the partition's state was read, ms since the epoch. */
  readonly #readAt: number;
  /** The event types of the consumer's live definitions (this code's and others'). */
  readonly #liveTypes: readonly string[];
  readonly #codeTypes: ReadonlySet<string>;

  constructor(context: BatchContext, state: PartitionState) {
    this.#context = context;
    for (const row of state.blocked) this.#blocked.set(streamKey(row.stream_type, row.stream_id), row);
    this.#checkpoint = { logXid: state.checkpoint_xid, position: state.checkpoint_position };
    this.#liveTypes = state.event_types;
    this.#readAt = new Date(state.db_now).getTime();
    // Approximate (the read's latency makes it err low): used only for the run times of re-queued jobs.
    this.clockOffsetMs = this.#readAt - Date.now();
    this.#codeTypes = new Set(context.consumer.eventTypes);
  }

  /** A careful transaction ran its share of handlers (see CAREFUL_HANDLERS_PER_TRANSACTION). */
  #carefulBudgetSpent(): boolean {
    return this.#context.careful && this.#savepointCounter >= CAREFUL_HANDLERS_PER_TRANSACTION;
  }

  /** The database's clock now, ms since the epoch (see {@link clockOffsetMs}). */
  #databaseNow(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /** An event the running code's definition does not handle (another live definition does). */
  #foreign(row: EventRow): boolean {
    const { streamTypes } = this.#context.consumer;
    return (
      !this.#codeTypes.has(row.type) || (streamTypes !== undefined && !streamTypes.includes(row.stream_type))
    );
  }

  /** The batch ended early: nothing more runs in this transaction (see `deliversOutside`). */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** When a deferral asked the partition to wait, if one did. */
  get deferredUntil(): Date | undefined {
    return this.#deferredUntil;
  }

  #defer(until: Date): void {
    this.#deferredUntil = until;
    this.#stopped = true;
  }

  /** After a recorded failure, a consumer delivering outside commits before its next request. */
  #stopAfterFailure(): void {
    if (this.#context.consumer.deliversOutside) this.#stopped = true;
  }

  /**
   * After a write (a stream released or advanced, a dead letter closed) the transaction has an xid, which
   * holds back the log's readable horizon for every reader until it commits: a consumer delivering outside
   * commits then, rather than sending more requests first.
   */
  #stopAfterWrite(): void {
    if (this.#context.consumer.deliversOutside) this.#stopped = true;
  }

  /** Dead letters an operator asked to redrive, in stream order. Streams parked by `block` go through retries instead. */
  async redrive(): Promise<boolean> {
    const { trx, consumer, partition } = this.#context;
    await this.#engineStatements();
    const rows = await readRedrives(trx, consumer.name, partition, consumer.batchSize, consumer.eventTypes);
    for (const row of rows) {
      if (this.#carefulBudgetSpent()) return true;
      const failure = await this.#deliver(row, row.dead_attempts + 1);
      if (failure?.deferUntil) {
        this.#defer(failure.deferUntil);
        return false;
      }
      await this.#engineStatements();
      if (failure) {
        await failRedrive(trx, row.dead_letter_id, errorText(failure), errorStack(failure));
        this.#stopAfterFailure();
        if (this.#stopped) return true;
      } else {
        await closeDeadLetter(trx, row.dead_letter_id);
        this.#stopAfterWrite();
        if (this.#stopped) return true;
      }
    }
    return rows.length === consumer.batchSize;
  }

  /** Streams whose retry is due: the failed event, then the stream's later events up to the checkpoint. */
  async retryDueStreams(): Promise<boolean> {
    const { trx, consumer } = this.#context;
    const now = this.#readAt; // the database's clock, as the retry times are
    let more = false;
    const due = [...this.#blocked.values()].filter(
      (row) => row.next_attempt_at !== null && Date.parse(row.next_attempt_at) <= now,
    );
    for (const block of due) {
      if (this.#stopped) return true;
      if (this.#carefulBudgetSpent()) return true;
      await this.#engineStatements();
      const { rows, limited } = await readStreamBacklog(trx, {
        streamType: block.stream_type,
        streamId: block.stream_id,
        fromVersion: block.stream_version,
        checkpoint: this.#checkpoint,
        eventTypes: this.#liveTypes,
        limit: consumer.batchSize,
        batchBytes: consumer.batchBytes,
      });
      let stoppedAt: EventRow | undefined;
      let delivered: EventRow | undefined;
      for (const row of rows) {
        const isHead = row.position === block.event_position;
        const spent = this.#carefulBudgetSpent();
        if (spent || this.#foreign(row)) {
          // Another definition's event (the stream waits for that code), or this careful transaction has
          // run its share of handlers (the next one continues): the stream stays blocked, from this event.
          if (spent) more = true;
          else this.handOver = true;
          stoppedAt = row;
          if (!isHead) {
            await this.#engineStatements();
            await advanceBlockedStream(trx, {
              consumer: consumer.name,
              streamType: block.stream_type,
              streamId: block.stream_id,
              lastVersion: row.stream_version - 1,
              eventTypes: this.#liveTypes,
            });
          }
          break;
        }
        const attempt = isHead ? block.attempts + 1 : 1;
        const failure = await this.#deliver(row, attempt);
        if (failure?.deferUntil) {
          this.#defer(failure.deferUntil);
          // The head waits as it was (no attempt used); past it, the stream stays blocked from here, due.
          if (delivered) {
            await this.#engineStatements();
            await advanceBlockedStream(trx, {
              consumer: consumer.name,
              streamType: block.stream_type,
              streamId: block.stream_id,
              lastVersion: delivered.stream_version,
              eventTypes: this.#liveTypes,
            });
          }
          return false;
        }
        if (failure) {
          this.#stopAfterFailure();
          const parked = await this.#recordFailure(
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
          await this.#engineStatements();
          await closeDeadLetterOfEvent(trx, consumer.name, row.position);
        }
        delivered = row;
      }
      if (stoppedAt) continue; // still blocked, at stoppedAt (#recordFailure updated the row)
      await this.#engineStatements();
      const last = rows.at(-1);
      if (limited && last) {
        // Not caught up yet: keep the stream blocked, due now, from the next version.
        await advanceBlockedStream(trx, {
          consumer: consumer.name,
          streamType: block.stream_type,
          streamId: block.stream_id,
          lastVersion: last.stream_version,
          eventTypes: this.#liveTypes,
        });
        more = true;
      } else {
        await releaseStream(trx, consumer.name, block.stream_type, block.stream_id);
        this.#blocked.delete(streamKey(block.stream_type, block.stream_id));
      }
      this.#stopAfterWrite();
    }
    return more;
  }

  /** New events after the checkpoint (read gap-safely with the state), skipping streams that are blocked. */
  async deliverNew(rows: readonly EventRow[], limited: boolean, head: LogPoint | null): Promise<boolean> {
    // The last event settled here (delivered, failed and recorded, or skipped behind its stream's failure).
    let last: EventRow | undefined;
    let budgetSpent = false;
    const batched = await this.#deliverAsBatch(rows);
    for (const row of rows) {
      if (this.#stopped) break;
      if (this.#blocked.has(streamKey(row.stream_type, row.stream_id))) {
        last = row;
        continue; // waits behind its stream's failure
      }
      if (this.#foreign(row)) {
        // Only another live definition of the consumer handles it (old and new code overlap in a rolling
        // deploy): stop before it, so that the checkpoint never passes it, and hand the partition over.
        this.handOver = true;
        break;
      }
      if (batched.has(row.id)) {
        last = row;
        continue;
      }
      if (this.#carefulBudgetSpent()) {
        budgetSpent = true; // the next transaction continues from here
        break;
      }
      const failure = await this.#deliver(row, 1);
      if (failure?.deferUntil) {
        this.#defer(failure.deferUntil); // this event and the rest stay after the checkpoint
        break;
      }
      if (failure) {
        await this.#recordFailure(row, 1, failure, undefined);
        this.#stopAfterFailure();
      }
      last = row;
    }
    if (this.handOver || budgetSpent) {
      if (last) {
        this.#checkpoint = { logXid: last.log_xid, position: last.position };
        this.#checkpointMoved = true;
      }
      return budgetSpent;
    }
    if (last) {
      this.#checkpoint = { logXid: last.log_xid, position: last.position };
      this.#checkpointMoved = true;
    }
    if (this.#stopped) return this.#deferredUntil === undefined;
    // Cut short by a limit (count or bytes): more may follow, and the checkpoint must not jump to the head.
    if (!limited && head && comparePoints(head, this.#checkpoint) > 0) {
      this.#checkpoint = head;
      this.#checkpointMoved = true;
    }
    return limited;
  }

  async saveCheckpoint(): Promise<void> {
    if (!this.#checkpointMoved && this.handled === 0) return;
    const { trx, consumer, partition, options } = this.#context;
    await saveCheckpoint(trx, {
      consumer: consumer.name,
      partition,
      checkpoint: this.#checkpoint,
      handled: this.handled,
      // The switch back to the engine's timeout rides with the checkpoint (one round trip fewer).
      ...(this.#timeoutOf === 'engine'
        ? {}
        : { statementTimeoutMs: options.statementTimeoutMs ?? DEFAULTS.statementTimeoutMs }),
    });
    this.#timeoutOf = 'engine';
  }

  nextRetryAt(): Date | undefined {
    // Deferred: nothing of this partition runs before then, due retries included.
    if (this.#deferredUntil) return this.#deferredUntil;
    let next: number | undefined;
    for (const row of this.#blocked.values()) {
      if (row.next_attempt_at === null) continue;
      const at = Date.parse(row.next_attempt_at);
      if (next === undefined || at < next) next = at;
    }
    return next === undefined ? undefined : new Date(next);
  }

  /**
   * Calls the handler. Returns the failure, or undefined on success. In fast mode a failure aborts the
   * batch (rerun carefully); in careful mode the handler's writes are undone by its savepoint.
   *
   * In careful mode a handler that returned is also checked for what would only fail later, outside it: a
   * transaction it left aborted (it caught a database error and carried on) and deferred constraints its
   * writes break (they would fail at COMMIT). Both count as its failure.
   */
  async #deliver(row: EventRow, attempt: number): Promise<Failure | undefined> {
    const { trx, consumer, careful, knownFailures, options } = this.#context;
    const known = knownFailures.get(row.id) ?? recentFailures.take(consumer.name, row.id, false);
    if (known) {
      // Failed earlier in this batch, or in another drain of this process that lost the partition before it
      // could record it: not called twice for one attempt. The fast path reruns carefully to record it.
      if (!careful) throw new RerunCarefully(false);
      knownFailures.set(row.id, known);
      return known;
    }
    await this.#handlerStatements();
    const started = performance.now();
    // A handler that delivers outside writes nothing in the transaction: no savepoint to undo it with.
    const savepoint = careful && !consumer.deliversOutside ? `d${++this.#savepointCounter}` : undefined;
    if (savepoint) await sql.raw(`savepoint ${savepoint}`).execute(trx);
    const failure = await invokeHandler({
      consumer,
      row,
      attempt,
      trx,
      registry: options.registry,
      logger: options.logger,
    });
    const durationMs = performance.now() - started;
    if (failure?.deferUntil && careful) {
      if (savepoint) await sql.raw(`rollback to savepoint ${savepoint}`).execute(trx);
      return failure;
    }
    if (!failure && savepoint) {
      const late = await this.#settle(savepoint);
      if (late) {
        knownFailures.set(row.id, late);
        return late;
      }
    }
    if (!failure) {
      this.handled++;
      this.#report(row, true, durationMs, false);
      return undefined;
    }
    // The connection was lost (failover, restart, terminated backend): not the event's failure, so not an
    // attempt. The drain fails and is run again; the handler is called again as the same attempt.
    if (isConnectionError(failure.error)) throw failure.error;
    // The transaction was already aborted when this handler started: an earlier handler of the fast batch
    // swallowed a database error. Not this event's failure; the careful rerun finds the culprit.
    if (!careful && isAbortedTransaction(failure.error)) throw new RerunCarefully(false);
    knownFailures.set(row.id, failure);
    recentFailures.remember(consumer.name, row.id, failure);
    if (!careful || failure.poisonsTransaction) throw new RerunCarefully(failure.poisonsTransaction);
    if (savepoint) await sql.raw(`rollback to savepoint ${savepoint}`).execute(trx);
    return failure;
  }

  /**
   * On the fast path of a consumer with a batch handler: delivers the new events the loop of
   * {@link deliverNew} would deliver one by one (up to the first foreign one, skipping blocked streams) in
   * one `handleBatch` call. A failure of the call names no event, so it reruns the batch carefully, which
   * delivers one event per call (see `invokeBatchHandler`).
   *
   * @returns the ids of the events delivered (none: the loop delivers them one by one).
   */
  async #deliverAsBatch(rows: readonly EventRow[]): Promise<ReadonlySet<string>> {
    const { trx, consumer, careful, knownFailures, options } = this.#context;
    if (!consumer.handleBatch || careful || consumer.deliversOutside) return new Set();
    const picked: EventRow[] = [];
    for (const row of rows) {
      if (this.#blocked.has(streamKey(row.stream_type, row.stream_id))) continue;
      if (this.#foreign(row)) break;
      // A failure known from an earlier try: the loop reruns carefully at once, without calling anything.
      if (knownFailures.has(row.id) || recentFailures.take(consumer.name, row.id, false)) return new Set();
      picked.push(row);
    }
    if (picked.length < 2) return new Set();
    await this.#handlerStatements();
    const started = performance.now();
    const failure = await invokeBatchHandler({
      consumer,
      rows: picked,
      trx,
      registry: options.registry,
      logger: options.logger,
    });
    if (failure) {
      if (isConnectionError(failure.error)) throw failure.error;
      throw new RerunCarefully(failure.poisonsTransaction);
    }
    const durationMs = (performance.now() - started) / picked.length;
    for (const row of picked) {
      this.handled++;
      this.#report(row, true, durationMs, false);
    }
    return new Set(picked.map((row) => row.id));
  }

  /**
   * Records a failed attempt: schedules a retry with backoff (the stream stays blocked), or — when attempts
   * are used up, or the failure is permanent — writes a dead letter and, per the consumer's policy, lets the
   * stream continue or parks it.
   *
   * @returns true when the stream stays blocked at this event (its later events must wait).
   */
  async #recordFailure(
    row: EventRow,
    attempt: number,
    failure: Failure,
    firstFailedAt: string | undefined,
  ): Promise<boolean> {
    const { trx, consumer, partition, options } = this.#context;
    this.failed++;
    recentFailures.take(consumer.name, row.id, true);
    const policy = consumer.retry;
    const exhausted = failure.permanent || attempt >= policy.maxAttempts;
    const message = errorText(failure);
    await this.#engineStatements();
    options.logger.warn(
      {
        consumer: consumer.name,
        eventId: row.id,
        eventType: row.type,
        attempt,
        exhausted,
        err: failure.error,
      },
      exhausted ? 'handler failed; attempts exhausted' : 'handler failed; will retry',
    );
    if (exhausted) {
      await recordDeadLetter(trx, {
        consumer: consumer.name,
        partition,
        event: row,
        attempts: attempt,
        error: message,
        stack: errorStack(failure),
        firstFailedAt,
      });
      this.#report(row, false, 0, true);
      // The stream moves on. If it was blocked at this event, the caller's catch-up continues past it.
      if (consumer.onExhausted === 'dead_letter') return false;
    } else {
      this.#report(row, false, 0, false);
    }
    const delayMs = exhausted
      ? null
      : Math.max(retryDelayMs(policy, attempt), Math.min(failure.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS));
    const nextAttemptAt = await blockStream(trx, {
      consumer: consumer.name,
      partition,
      event: row,
      attempts: attempt,
      retryDelayMs: delayMs,
      error: message,
      firstFailedAt,
    });
    this.#blocked.set(streamKey(row.stream_type, row.stream_id), {
      stream_type: row.stream_type,
      stream_id: row.stream_id,
      event_position: row.position,
      stream_version: row.stream_version,
      attempts: attempt,
      next_attempt_at: nextAttemptAt?.toISOString() ?? null,
      first_failed_at: firstFailedAt ?? new Date(this.#databaseNow()).toISOString(),
    });
    return true;
  }

  /**
   * After a handler returned in careful mode: checks the deferred constraints so far (in a savepoint that
   * restores their deferred mode) and releases the handler's savepoint, in one round trip. On failure the
   * handler's savepoint is rolled back and the failure returned.
   */
  async #settle(savepoint: string): Promise<Failure | undefined> {
    const { trx, consumer } = this.#context;
    try {
      await sql
        .raw(
          'savepoint settle; set constraints all immediate; rollback to savepoint settle; ' +
            `release savepoint ${savepoint}`,
        )
        .execute(trx);
      return undefined;
    } catch (error) {
      if (!hasSqlState(error) || isConnectionError(error)) throw error;
      await sql.raw(`rollback to savepoint ${savepoint}`).execute(trx);
      const cause = error as Error;
      return {
        error: new Error(
          isAbortedTransaction(cause)
            ? `${consumer.name} returned, but its transaction was aborted by a database error it caught ` +
                '(rethrow it, or use a savepoint around the statement it expects to fail)'
            : `${consumer.name} returned, but its writes fail at commit: ${cause.message}`,
          { cause },
        ),
        poisonsTransaction: false,
        permanent: false,
      };
    }
  }

  /** Puts the engine's `statement_timeout` in force (before its own statements). */
  async #engineStatements(): Promise<void> {
    if (this.#timeoutOf === 'engine') return;
    const ms = this.#context.options.statementTimeoutMs ?? DEFAULTS.statementTimeoutMs;
    await setStatementTimeout(this.#context.trx, ms);
    this.#timeoutOf = 'engine';
  }

  /** Puts the consumer's handler timeout in force as `statement_timeout` (before a handler runs). */
  async #handlerStatements(): Promise<void> {
    if (this.#timeoutOf === 'handler') return;
    await setStatementTimeout(this.#context.trx, this.#context.consumer.timeoutMs);
    this.#timeoutOf = 'handler';
  }

  /** Collects an outcome; the caller reports them once the transaction committed. */
  #report(row: EventRow, ok: boolean, durationMs: number, deadLettered: boolean): void {
    this.#context.outcomes.push({
      consumer: this.#context.consumer.name,
      eventType: row.type,
      ok,
      durationMs,
      deadLettered,
    });
  }
}

function errorText(failure: Failure): string {
  return storable(failure.error.message.slice(0, MAX_ERROR_CHARS));
}

function errorStack(failure: Failure): string | null {
  const stack = failure.error.stack;
  return stack === undefined ? null : storable(stack.slice(0, MAX_STACK_CHARS));
}

/** Postgres text cannot hold NUL: it becomes U+FFFD (a dead letter must never fail to be written). */
function storable(text: string): string {
  return text.replaceAll('\u0000', '\uFFFD');
}

/** SQLSTATE 25P02: the transaction was aborted by an earlier error and ignores every statement. */
export function isAbortedTransaction(error: unknown): boolean {
  return (error as { code?: unknown }).code === '25P02';
}

/** A database error (it carries a SQLSTATE), as opposed to one of the driver or the network. */
export function hasSqlState(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

/**
 * The connection is gone or going: SQLSTATE class 08, the server ending the session (57P01–57P03), a
 * socket error, or the driver's own report of a lost connection.
 */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    return (
      code.startsWith('08') ||
      /^57P0[1-3]$/.test(code) ||
      /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT)$/.test(code)
    );
  }
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated|connection error|Connection is closed/i.test(message);
}

/** Sets the transaction's `statement_timeout` for the statements that follow. */
async function setStatementTimeout(trx: BatchContext['trx'], ms: number): Promise<void> {
  await sql`select set_config('statement_timeout', ${String(Math.trunc(ms))}, true)`.execute(trx);
}
