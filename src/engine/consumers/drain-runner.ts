import { setTimeout as sleep } from 'node:timers/promises';
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

/**
 * Pacing of a partition that news keeps arriving for. Every drain costs four round trips and a commit
 * whatever its size; under sustained writes, draining again at once after each commit took 1–3 events per
 * transaction and cut the writers' throughput to about 55 % on 2 cores (bench/probes/delivery-under-load.ts).
 * So when a drain ends with news waiting, the next one first waits LINGER_FACTOR × the last drain's
 * duration (at most MAX_LINGER_MS) and takes more events in one transaction — but only if, at the rate the
 * partition has been receiving events, the wait gathers LINGER_MIN_EVENTS or more: a partition that gets an
 * event now and then (200 events/s over 8 partitions) is drained at once, as before. The wait scales with
 * how slow drains are: on a fast, idle system a few milliseconds, under CPU contention longer.
 */
const LINGER_FACTOR = 3;
const MAX_LINGER_MS = 50;
const LINGER_MIN_EVENTS = 2;

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
  /**
   * Partitions draining in this process, on a hand-off or a queued job → whether news arrived meanwhile.
   * One drainer per partition per process: a second would only wait on the first one's lock.
   */
  readonly #active = new Map<string, { again: boolean }>();
  /** Drains running on a hand-off (bounded by `localConcurrency`). */
  #handoffs = 0;
  readonly #loops = new Set<Promise<void>>();
  #stopping = false;
  /** The database's clock minus this process's, ms, from the last drain: job run times are the database's. */
  #clockOffsetMs = 0;
  /** Drains running now (queued and handed-off), and queued ones waiting for a slot. */
  #running = 0;
  readonly #waiting: Array<() => void> = [];
  /** Aborted by stop(): ends lingering drains' waits at once. */
  readonly #stopped = new AbortController();

  constructor(options: DrainRunnerOptions) {
    this.#options = options;
  }

  /** Partitions draining on a hand-off right now. */
  get localDrains(): number {
    return this.#handoffs;
  }

  /**
   * The relay's hand-off: takes the targets it can drain now (already draining here, hand-off or queued
   * job: flagged to look again; otherwise while a slot is free) and returns the rest, for the queue.
   */
  offer(targets: readonly DrainTarget[]): DrainTarget[] {
    const rest: DrainTarget[] = [];
    for (const target of targets) {
      if (this.#stopping || !this.#options.consumers.has(target.consumer)) {
        rest.push(target);
        continue;
      }
      const running = this.#active.get(key(target));
      if (running) {
        running.again = true;
      } else if (this.#handoffs < this.#options.localConcurrency && this.#running < this.#options.maxDrains) {
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
    // This process is draining the partition already: have that drain look again rather than queue on its
    // lock (a queued drain waiting there held a worker slot and a connection for nothing, then re-queued
    // itself as busy, and the next one did the same).
    if (this.#lookAgain(target)) return;
    // A queued drain waits for a slot (holding only its graphile-worker slot, not a connection): queued and
    // handed-off drains together never exceed maxDrains.
    await this.#acquire();
    try {
      if (this.#lookAgain(target)) return; // a hand-off took the partition while this waited
      const deadline = Date.now() + this.#options.jobBudgetMs;
      await this.#drainWhileNews(target, addJobs, deadline);
    } finally {
      this.#release();
    }
  }

  /** Flags the partition's running drain in this process to look again; false if none runs. */
  #lookAgain(target: DrainTarget): boolean {
    const running = this.#active.get(key(target));
    if (running) running.again = true;
    return running !== undefined;
  }

  /**
   * Drains the partition as this process's only drainer of it, again as long as news arrived meanwhile.
   * `deadline`: a queued job's budget — past it the partition goes back to the queue.
   */
  async #drainWhileNews(target: DrainTarget, addJobs: AddJobsFunction, deadline: number | undefined) {
    const state = { again: false };
    this.#active.set(key(target), state);
    try {
      // Events handled since the first drain began (what was waiting before it says nothing of the rate).
      const tally = { handled: 0 };
      const since = performance.now();
      for (let first = true; ; first = false) {
        state.again = false;
        const started = performance.now();
        const end = await this.#drainLoop(target, addJobs, deadline, first ? undefined : tally);
        if (end === 'requeued' || !state.again || this.#stopping) return;
        if (deadline !== undefined && Date.now() >= deadline) {
          await scheduleDrains(addJobs, [target]);
          return;
        }
        const now = performance.now();
        const linger = Math.min(MAX_LINGER_MS, LINGER_FACTOR * (now - started));
        // Events per ms this partition has been getting since its drains began: linger only when the wait
        // is expected to gather enough events to pay for itself.
        if ((tally.handled / Math.max(1, now - since)) * linger >= LINGER_MIN_EVENTS) {
          await this.#linger(linger);
          if (this.#stopping) return; // what is left is after the checkpoint, for the next drainer
        }
      }
    } finally {
      this.#active.delete(key(target));
    }
  }

  /** Waits `ms` before the next drain of a busy partition; cut short by stop(). */
  async #linger(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#stopped.signal }).catch(() => undefined);
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
    this.#stopped.abort();
    while (this.#loops.size > 0) await Promise.allSettled([...this.#loops]);
  }

  /** `delayMs` from now, on the database's clock (what graphile-worker compares a job's run time with). */
  #databaseTime(delayMs: number): Date {
    return new Date(Date.now() + this.#clockOffsetMs + delayMs);
  }

  #startLocal(target: DrainTarget): void {
    this.#handoffs++;
    const loop = (async () => {
      try {
        await this.#drainWhileNews(target, this.#options.addJobs, undefined);
      } catch (error) {
        // The events stay after the checkpoint; a queued drain (or the next poll, if even that fails)
        // delivers them.
        this.#options.logger.warn({ err: error, ...target }, 'drain failed; re-queued');
        await scheduleDrains(this.#options.addJobs, [target], this.#databaseTime(1000)).catch(
          () => undefined,
        );
      } finally {
        this.#handoffs--;
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
    tally?: { handled: number },
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
      if (tally) tally.handled += result.handled;
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
