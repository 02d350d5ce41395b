import {
  makeWorkerUtils,
  type Runner,
  run,
  type Task,
  Logger as WorkerLogger,
  type WorkerUtils,
} from 'graphile-worker';
import type pg from 'pg';
import type { ConsumerDefinition } from './consumers/consumer.ts';
import type { DeliveryOutcome } from './consumers/drain.ts';
import { DrainRunner } from './consumers/drain-runner.ts';
import { registerConsumers } from './consumers/register.ts';
import { createDb, type Db } from './db/database.ts';
import { createPool } from './db/pool.ts';
import { type Logger, silentLogger } from './logger.ts';
import type { EventDefinition } from './outbox/event.ts';
import { createEventRegistry } from './outbox/read.ts';
import { Relay } from './relay/relay.ts';
import { DRAIN_TASK, type DrainJobPayload } from './relay/schedule.ts';
import { guardWorkerRejections } from './worker-rejections.ts';

/** Options of {@link startPostbox}. */
export interface PostboxOptions {
  /** The service's pool; Postbox never ends it. Give it at least `concurrency + 2` connections. */
  readonly pool: pg.Pool;
  /** Used for the relay's dedicated LISTEN connection. */
  readonly connectionString: string;
  readonly consumers: readonly ConsumerDefinition[];
  /** Extra event definitions to upcast with (the consumers' own are always included). */
  readonly events?: readonly EventDefinition[];
  /** Partition drains run at once by this process. Default `8`. */
  readonly concurrency?: number;
  /** Relay poll interval (the delivery guarantee behind NOTIFY), ms. Default `2000`. */
  readonly pollIntervalMs?: number;
  /**
   * Time one drain job may keep a worker slot before it hands over (re-enqueues itself), ms. Keeps a
   * backlog on one partition from starving the others. Default `1000`.
   */
  readonly drainBudgetMs?: number;
  /**
   * Partitions this process drains at once when the relay leading here hands them over directly (no job
   * round trip; see src/consumers/drain-runner.ts), on top of `concurrency` queued drain jobs. `0` sends
   * everything through the job queue. Default: `concurrency`.
   */
  readonly handoffConcurrency?: number;
  readonly logger?: Logger;
  /** Observes each handler call (metrics). */
  readonly onDelivery?: (outcome: DeliveryOutcome) => void;
  /** Observes relay activity (metrics). */
  readonly onRelayActivity?: (kind: 'wakeup' | 'poll' | 'scan', scheduled: number) => void;
  /**
   * Keep running through graphile-worker's unhandled rejections when the database is lost (see
   * src/worker-rejections.ts). Default `true`; turn off if your process installs its own handler.
   */
  readonly guardWorkerRejections?: boolean;
}

/** A running Postbox engine: relay + graphile-worker + consumers. */
export interface Postbox {
  readonly db: Db;
  readonly relay: Relay;
  readonly runner: Runner;
  readonly workerUtils: WorkerUtils;
  /** Wakes the relay for an immediate poll in this process (admin actions NOTIFY it on commit anyway). */
  requestPoll(): void;
  /** False once stopped, or if graphile-worker's runner ended on its own (for readiness checks). */
  isRunning(): boolean;
  /** Stops taking jobs, lets running drains finish (their transactions commit), stops the relay. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts the engine: registers the consumers, runs graphile-worker with the partition-drain task, and
 * starts the relay. Needs migrations applied (`postbox migrate`).
 *
 * @example
 * const postbox = await startPostbox({ pool, connectionString, consumers: [paymentConsumer] });
 * // …
 * await postbox.stop(); // then end the pool
 */
export async function startPostbox(options: PostboxOptions): Promise<Postbox> {
  const logger = options.logger ?? silentLogger;
  const db = createDb(options.pool);
  const consumers = new Map(options.consumers.map((consumer) => [consumer.name, consumer]));
  const registry = createEventRegistry([
    ...(options.events ?? []),
    ...options.consumers.flatMap((consumer) => consumer.definitions),
  ]);
  await registerConsumers(db, options.consumers);
  const unguard = (options.guardWorkerRejections ?? true) ? guardWorkerRejections(logger) : () => {};
  const concurrency = options.concurrency ?? 8;
  // Resolved once graphile-worker's utilities exist (the runner needs the task, the task needs addJobs).
  let workerUtils: WorkerUtils | undefined;
  const drains = new DrainRunner({
    db,
    consumers,
    registry,
    logger,
    ...(options.onDelivery ? { onDelivery: options.onDelivery } : {}),
    addJobs: (specs, preserveRunAt) => {
      if (!workerUtils) throw new Error('postbox: worker utilities are not ready');
      return workerUtils.addJobs(specs, preserveRunAt);
    },
    jobBudgetMs: options.drainBudgetMs ?? 1000,
    localConcurrency: options.handoffConcurrency ?? concurrency,
  });
  const drainTask: Task = async (rawPayload, helpers) => {
    const payload = rawPayload as DrainJobPayload;
    await drains.runJob({ consumer: payload.consumer, partition: payload.partition }, helpers.addJobs);
  };

  const workerLogger = new WorkerLogger((scope) => (level, message, meta) => {
    const log = logger.child({ worker: scope });
    if (level === 'error') log.error(meta ?? {}, message);
    else if (level === 'warning') log.warn(meta ?? {}, message);
    else log.debug(meta ?? {}, message);
  });
  // graphile-worker's own bookkeeping (fetching, completing and adding drain jobs) runs on a pool of its
  // own with synchronous_commit off: it saves an fsync per job step, and losing such a write in a crash
  // is harmless here — delivery progress lives in the checkpoint, written by the drain's own (durable)
  // transaction on the service pool; a lost job is re-created by the relay's poll, a lost completion just
  // re-runs a drain that finds nothing new.
  const jobPool = createPool({
    connectionString: options.connectionString,
    max: concurrency * 2 + 4,
    applicationName: 'postbox-worker',
    options: '-c synchronous_commit=off',
    logger,
  });
  const runner = await run({
    pgPool: jobPool,
    concurrency,
    noHandleSignals: true,
    pollInterval: options.pollIntervalMs ?? 2000,
    logger: workerLogger,
    taskList: { [DRAIN_TASK]: drainTask },
  });
  workerUtils = await makeWorkerUtils({ pgPool: jobPool, logger: workerLogger });
  const utils = workerUtils;
  const relay = new Relay({
    connectionString: options.connectionString,
    consumers: [...consumers.keys()],
    addJobs: utils.addJobs,
    ...(options.handoffConcurrency === 0 ? {} : { handoff: (targets) => drains.offer(targets) }),
    pollIntervalMs: options.pollIntervalMs ?? 2000,
    logger,
    ...(options.onRelayActivity ? { onActivity: options.onRelayActivity } : {}),
  });
  await relay.start();

  let running = true;
  runner.promise.then(
    () => {
      running = false;
    },
    (error: unknown) => {
      running = false;
      logger.error({ err: error }, 'graphile-worker runner failed');
    },
  );
  let stopping: Promise<void> | undefined;
  return {
    db,
    relay,
    runner,
    workerUtils: utils,
    requestPoll: () => relay.requestPoll(),
    isRunning: () => running && !stopping,
    stop() {
      stopping ??= (async () => {
        await relay.stop();
        await drains.stop();
        await runner.stop();
        await utils.release();
        // graphile-worker does not await its last job completions; let them get a connection and finish
        // before the pool ends (pg-pool would leave them waiting until the connect timeout, then reject).
        const deadline = Date.now() + 5000;
        while (
          (jobPool.waitingCount > 0 || jobPool.idleCount < jobPool.totalCount) &&
          Date.now() < deadline
        ) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await jobPool.end();
        unguard();
      })();
      return stopping;
    },
  };
}
