import { sql } from 'kysely';
import type { EngineDb } from '../db/database.ts';
import { DEFAULTS } from '../defaults.ts';
import { LOCK_NOT_AVAILABLE, lockPartitionStatement } from '../sql/lock-partition.ts';
import { readPartitionState } from '../sql/read-partition-state.ts';
import { Batch, type BatchContext, hasSqlState, isConnectionError } from './batch.ts';
import type { ConsumerDefinition } from './consumer.ts';
import type { DeliveryOutcome, DrainOptions } from './delivery-outcome.ts';
import { type Failure, RerunCarefully } from './failures.ts';

export type { DeliveryOutcome, DrainOptions } from './delivery-outcome.ts';

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
  /** Earliest scheduled retry in this partition, if any, on the database's clock. */
  readonly nextRetryAt: Date | undefined;
  /** The database's clock minus this process's, ms, as this drain saw it. */
  readonly clockOffsetMs?: number;
  /**
   * The drain stopped before an event only another live definition of the consumer handles (old and new
   * code overlapping in a rolling deploy): the partition should be drained again by a process running it.
   */
  readonly handOver?: boolean;
}

/**
 * How long a drain waits for its partition's lock before it reports `busy`. A partition held by another
 * drainer is usually released within milliseconds (its batch commits): waiting beats re-queueing, which put
 * whole re-queue delays into the latency tail.
 */
const LOCK_WAIT = '250ms';

/**
 * Delivers the next batch of one consumer partition in ONE transaction: handler writes, appended events,
 * retry/dead-letter bookkeeping and the new checkpoint commit together, or not at all.
 *
 * Exclusivity: a transaction-scoped advisory lock per (consumer, partition); a second drainer gets `busy`.
 * (Advisory rather than a row lock: a row lock would give this transaction an xid before it reads, and its
 * own xid would then hold back the gap-safe read horizon.)
 *
 * Speed: the batch first runs without a savepoint per handler. If any handler throws, the batch is rolled
 * back to a savepoint taken just after the lock, and rerun with a savepoint around each handler, skipping
 * the handlers already known to fail in this batch — so the common path pays nothing for failure isolation.
 * A handler that timed out may still be running with the transaction: then the whole transaction is
 * abandoned and the rerun starts a new one.
 */
export async function drainPartition(
  db: EngineDb,
  consumer: ConsumerDefinition,
  partition: number,
  options: DrainOptions,
): Promise<DrainResult> {
  const knownFailures = new Map<string, Failure>();
  // Handlers that act outside cannot be undone by a rollback: a savepoint each from the start, so a failure
  // never reruns (and re-sends) the batch.
  let careful = consumer.deliversOutside === true;
  /** A rerun after a failure in this call (not merely careful from the start). */
  let rerun = false;
  for (;;) {
    const trx = await db.startTransaction().execute();
    try {
      // A careful rerun waits for the lock longer than any handler may take: otherwise a drain queued on
      // the lock takes the partition, calls the same hanging handler, and the failure is never recorded.
      const lockWait = rerun ? `${Math.trunc(consumer.timeoutMs * 2 + 1000)}ms` : LOCK_WAIT;
      try {
        await sql
          .raw(
            lockPartitionStatement({
              consumer: consumer.name,
              partition,
              statementTimeoutMs: options.statementTimeoutMs ?? DEFAULTS.statementTimeoutMs,
              // A handler may be idle in the transaction (calling another system) up to its timeout.
              idleTimeoutMs: Math.max(
                options.sessionTimeoutMs ?? DEFAULTS.sessionTimeoutMs,
                consumer.timeoutMs + 1000,
              ),
              lockWait,
              asyncCommit: consumer.asyncCommit,
            }),
          )
          .execute(trx);
      } catch (error) {
        if ((error as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw error;
        await trx.rollback().execute();
        return { status: 'busy', handled: 0, failed: 0, nextRetryAt: undefined };
      }
      for (;;) {
        // The lock was taken before the savepoint `batch`: a rerun after a failure (rollback to it, which
        // keeps it) keeps the partition, so no other drainer can slip in and call the failed handler again
        // for the same attempt.
        const outcomes: DeliveryOutcome[] = [];
        try {
          const context: BatchContext = {
            trx,
            consumer,
            partition,
            options,
            knownFailures,
            careful,
            outcomes,
          };
          const result = await runBatch(context);
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
          // A database error outside the handlers on the fast path — the engine's statement after a handler
          // that left the transaction aborted, or COMMIT failing a deferred constraint — belongs to one of
          // the batch's handlers: a careful rerun (in a new transaction) finds which, and records it.
          if (
            !careful &&
            !(error instanceof RerunCarefully) &&
            hasSqlState(error) &&
            !isConnectionError(error)
          ) {
            throw new RerunCarefully(true);
          }
          if (!(error instanceof RerunCarefully) || error.abandonTransaction) throw error;
          careful = true;
          rerun = true;
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
        rerun = true;
        continue;
      }
      throw error;
    }
  }
}

async function runBatch(context: BatchContext): Promise<DrainResult> {
  const idle = (status: DrainResult['status']): DrainResult => ({
    status,
    handled: 0,
    failed: 0,
    nextRetryAt: undefined,
  });
  const state = await readPartitionState(context.trx, {
    consumer: context.consumer.name,
    partition: context.partition,
    batchSize: context.consumer.batchSize,
    batchBytes: context.consumer.batchBytes,
    handlerTimeoutMs: context.consumer.timeoutMs,
  });
  if (!state) return idle('unknown');
  if (state.status === 'paused') return idle('paused');

  const batch = new Batch(context, state);
  let more = false;
  if (state.has_redrives) more = (await batch.redrive()) || more;
  if (!batch.stopped) more = (await batch.retryDueStreams()) || more;
  if (!batch.stopped) {
    const fresh = (state.batch?.rows ?? []).map((row) => ({
      ...row,
      occurred_at: new Date(row.occurred_at),
    }));
    more = (await batch.deliverNew(fresh, state.batch?.limited ?? false, state.head)) || more;
  }
  // Ended early after a failure: go on in a new transaction; deferred: not before the deferral ends.
  if (batch.stopped) more = batch.deferredUntil === undefined;
  await batch.saveCheckpoint();
  return {
    status: more ? 'more' : 'drained',
    handled: batch.handled,
    failed: batch.failed,
    nextRetryAt: batch.nextRetryAt(),
    handOver: batch.handOver,
    clockOffsetMs: batch.clockOffsetMs,
  };
}
