import type { AddJobsFunction } from 'graphile-worker';
import type { EngineDb as Db } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import type { EventRegistry } from '../outbox/read.ts';
import { type DrainTarget, scheduleDrains, scheduleRetry } from '../relay/schedule.ts';
import type { ConsumerDefinition } from './consumer.ts';
import { type DeliveryOutcome, drainPartition } from './drain.ts';

/** Options of {@link DrainRunner}. */
export interface DrainRunnerOptions {
  readonly db: Db;
  readonly consumers: ReadonlyMap<string, ConsumerDefinition>;
  readonly registry: EventRegistry;
  readonly logger: Logger;
  readonly onDelivery?: (outcome: DeliveryOutcome) => void;
  /** graphile-worker's `addJobs` (resolved lazily: the worker utilities exist only after the runner). */
  readonly addJobs: AddJobsFunction;
  /** Time one queued drain job may keep its worker slot before it re-enqueues itself, ms. */
  readonly jobBudgetMs: number;
  /** Partitions this process drains at once on the relay's direct hand-off (within `maxDrains`). */
  readonly localConcurrency: number;
  /**
   * Drains (delivery transactions, each holding a connection) this process runs at once, queued and
   * handed-off together: the application sizes its pool for this.
   */
  readonly maxDrains: number;
  /** `statement_timeout` of the engine's own statements in delivery transactions, ms. */
  readonly statementTimeoutMs: number;
  /** A delivery transaction idle this long (the process froze) loses its session, ms. */
  readonly sessionTimeoutMs: number;
}

/** How a drain loop ended. */
type LoopEnd = 'done' | 'requeued';

/** Delay of the queued drain that hands a partition over to another definition's code, ms. */
const HAND_OVER_DELAY_MS = 250;

const key = (target: DrainTarget): string => `${target.consumer}\u0000${target.partition}`;

/**
 * Runs partition drains in this process, from two sources:
 *
 * - **Queued jobs** (graphile-worker's `postbox_drain:<consumer>` tasks, registered for this process's
 *   consumers only): polls, retries, redrives, overflow, and news scheduled by a relay leading in another
 *   process. Budgeted: after `jobBudgetMs` a job re-enqueues
 *   itself so a backlog on one partition cannot hold a worker slot against the others.
 * - **Direct hand-off from the relay** ({@link offer}), when the relay leads in this process: the relay
 *   passes the partitions of a scan here instead of enqueueing jobs, while this process has free slots.
 *   That skips a job round trip (insert + NOTIFY + fetch + complete) between commit and handler, which
 *   was most of the delivery latency on a quiet system. What is not taken goes to the queue as before.
 *
 * Correctness does not rest on this class: a drain is exclusive per partition by its advisory lock, and
 * progress is the committed checkpoint. A hand-off lost in a crash leaves its events after the checkpoint,
 * where the relay's poll finds them (as it finds a lost job).
 */
export class DrainRunner {
  readonly #options: DrainRunnerOptions;
  /** Partitions draining in this process on a hand-off → whether news arrived meanwhile. */
  readonly #local = new Map<string, { again: boolean }>();
  readonly #loops = new Set<Promise<void>>();
  #stopping = false;
  /** The database's clock minus this process's, ms, from the last drain: job run times are the database's. */
  #clockOffsetMs = 0;
  /** Drains running now (queued and handed-off), and queued ones waiting for a slot. */
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(options: DrainRunnerOptions) {
    this.#options = options;
  }

  /** Partitions draining on a hand-off right now. */
  get localDrains(): number {
    return this.#local.size;
  }

  /**
   * The relay's hand-off: takes the targets it can drain now (already draining here: flagged to look
   * again; otherwise while a slot is free) and returns the rest, for the queue.
   */
  offer(targets: readonly DrainTarget[]): DrainTarget[] {
    const rest: DrainTarget[] = [];
    for (const target of targets) {
      if (this.#stopping || !this.#options.consumers.has(target.consumer)) {
        rest.push(target);
        continue;
      }
      const running = this.#local.get(key(target));
      if (running) {
        running.again = true;
      } else if (
        this.#local.size < this.#options.localConcurrency &&
        this.#running < this.#options.maxDrains
      ) {
        this.#running++; // released when the local loop ends
        this.#startLocal(target);
      } else {
        rest.push(target);
      }
    }
    return rest;
  }

  /** The body of the `postbox_drain:<consumer>` graphile-worker tasks. */
  async runJob(target: DrainTarget, addJobs: AddJobsFunction): Promise<void> {
    if (!this.#options.consumers.has(target.consumer)) return; // another deployment's consumer
    const running = this.#local.get(key(target));
    if (running) {
      // This process is draining the partition on a hand-off: have it look again rather than queue on
      // its lock.
      running.again = true;
      return;
    }
    // A queued drain waits for a slot (holding only its graphile-worker slot, not a connection): queued and
    // handed-off drains together never exceed maxDrains.
    await this.#acquire();
    try {
      await this.#drainLoop(target, addJobs, Date.now() + this.#options.jobBudgetMs);
    } finally {
      this.#release();
    }
  }

  #acquire(): Promise<void> {
    if (this.#running < this.#options.maxDrains) {
      this.#running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Frees a slot: hands it straight to a waiting queued drain, if any. */
  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#running--;
  }

  /** Stops taking hand-offs and waits for the local drains to commit their current batch. */
  async stop(): Promise<void> {
    this.#stopping = true;
    while (this.#loops.size > 0) await Promise.allSettled([...this.#loops]);
  }

  /** `delayMs` from now, on the database's clock (what graphile-worker compares a job's run time with). */
  #databaseTime(delayMs: number): Date {
    return new Date(Date.now() + this.#clockOffsetMs + delayMs);
  }

  #startLocal(target: DrainTarget): void {
    const state = { again: false };
    this.#local.set(key(target), state);
    const loop = (async () => {
      try {
        for (;;) {
          state.again = false;
          const end = await this.#drainLoop(target, this.#options.addJobs, undefined);
          if (end === 'requeued' || !state.again || this.#stopping) break;
        }
      } catch (error) {
        // The events stay after the checkpoint; a queued drain (or the next poll, if even that fails)
        // delivers them.
        this.#options.logger.warn({ err: error, ...target }, 'drain failed; re-queued');
        await scheduleDrains(this.#options.addJobs, [target], this.#databaseTime(1000)).catch(
          () => undefined,
        );
      } finally {
        this.#local.delete(key(target));
        this.#release();
      }
    })();
    this.#loops.add(loop);
    void loop.finally(() => this.#loops.delete(loop));
  }

  /**
   * Drains until nothing is ready. `deadline`: re-enqueue past it (jobs); none: keep going (hand-offs —
   * other partitions are not starved by it, they overflow to the queue).
   */
  async #drainLoop(
    target: DrainTarget,
    addJobs: AddJobsFunction,
    deadline: number | undefined,
  ): Promise<LoopEnd> {
    const consumer = this.#options.consumers.get(target.consumer);
    if (!consumer) return 'done';
    for (;;) {
      const result = await drainPartition(this.#options.db, consumer, target.partition, {
        logger: this.#options.logger,
        registry: this.#options.registry,
        statementTimeoutMs: this.#options.statementTimeoutMs,
        sessionTimeoutMs: this.#options.sessionTimeoutMs,
        ...(this.#options.onDelivery ? { onDelivery: this.#options.onDelivery } : {}),
      });
      if (result.clockOffsetMs !== undefined) this.#clockOffsetMs = result.clockOffsetMs;
      if (result.nextRetryAt) await scheduleRetry(addJobs, target, result.nextRetryAt);
      if (result.handOver) {
        // Events only another definition of the consumer handles: a queued drain, a little later, which
        // any process running the consumer may take (the one with that definition delivers them).
        await scheduleDrains(addJobs, [target], this.#databaseTime(HAND_OVER_DELAY_MS));
        return 'requeued';
      }
      if (result.status === 'busy') {
        // Another drainer holds the partition. It may be finishing just as news arrived: look again,
        // due at once (the next drain waits up to LOCK_WAIT on the lock, which paces it). Not a few ms
        // later: graphile-worker is woken by the insert, finds nothing due yet, and would only look again
        // at its poll interval.
        await scheduleDrains(addJobs, [target]);
        return 'requeued';
      }
      if (result.status !== 'more') return 'done';
      if (this.#stopping || (deadline !== undefined && Date.now() >= deadline)) {
        await scheduleDrains(addJobs, [target]);
        return 'requeued';
      }
    }
  }
}
