import {
  makeWorkerUtils,
  type Runner,
  run,
  type Task,
  Logger as WorkerLogger,
  type WorkerUtils,
} from 'graphile-worker';
import pg from 'pg';
import type { ConsumerDefinition } from './consumers/consumer.ts';
import { DrainRunner } from './consumers/drain-runner.ts';
import { registerConsumers } from './consumers/register.ts';
import { createDb, type EngineDb } from './db/database.ts';
import { createPool } from './db/pool.ts';
import { DEFAULTS } from './defaults.ts';
import type { AddressPolicy } from './destinations/address-guard.ts';
import { registerDestinations } from './destinations/admin.ts';
import { AttemptLog } from './destinations/attempt-log.ts';
import type { DestinationDefinition } from './destinations/destination.ts';
import { DestinationSync } from './destinations/destination-sync.ts';
import { WebhookSender } from './destinations/webhook.ts';
import { type Logger, silentLogger } from './logger.ts';
import type { EventDefinition } from './outbox/event.ts';
import { createEventRegistry } from './outbox/read.ts';
import { createPostboxEvents, type PostboxEvents } from './postbox-events.ts';
import { Notifier } from './relay/notifier.ts';
import { Relay } from './relay/relay.ts';
import {
  DESTINATION_DRAIN_TASK,
  DRAIN_TASK,
  type DrainJobPayload,
  drainTaskOf,
  scheduleDrains,
} from './relay/schedule.ts';
import { checkLogOrder } from './sql/check-log-order.ts';
import { guardWorkerRejections } from './worker-rejections.ts';

/** Where the engine connects: the application's pool (preferred), or a URL for a pool of its own. */
export type PostboxConnection =
  | {
      /**
       * The application's pool; the engine runs delivery transactions on it and never ends it. Size it for
       * the application plus `concurrency` drains (queued and handed-off drains share that limit).
       */
      readonly pool: pg.Pool;
    }
  | {
      /** A connection string: the engine makes a pool of `DEFAULTS.poolSize` (10) and ends it on `stop()`. */
      readonly connectionString: string;
    };

/** Options of {@link startPostbox}. */
export type PostboxOptions = PostboxConnection & {
  /** The consumers this process runs (from {@link defineConsumer}). */
  readonly consumers: readonly ConsumerDefinition[];
  /**
   * Destinations declared in code ({@link defineDestination}); written to the database at start. Those
   * created at runtime (GraphQL, CLI, `createDestination`) are delivered too. Default none.
   */
  readonly destinations?: readonly DestinationDefinition[];
  /**
   * Deliver destinations (webhooks) in this process. Default `true`. With `false` this process neither
   * delivers nor registers the `destinations` declared in code.
   */
  readonly deliverDestinations?: boolean;
  /**
   * Which addresses destinations may reach: the SSRF guard, checked on every connection. Default: public
   * addresses only (`{ allowPrivate: false }`); development setups allow loopback.
   */
  readonly destinationAddressPolicy?: AddressPolicy;
  /** Extra event definitions to upcast and validate with; the consumers' own are always included. */
  readonly events?: readonly EventDefinition[];
  /**
   * Partition drains (delivery transactions) this process runs at once, from the job queue and the relay's
   * hand-off together. Default `8` (`DEFAULTS.concurrency`).
   */
  readonly concurrency?: number;
  /** The relay's poll interval (the delivery guarantee behind NOTIFY), ms. Default `2000`. */
  readonly pollIntervalMs?: number;
  /**
   * Time one queued drain may keep a worker slot before it hands over (re-enqueues itself), ms. Keeps a
   * backlog on one partition from starving the others. Default `1000`.
   */
  readonly drainBudgetMs?: number;
  /**
   * Of the `concurrency` drains, how many may be partitions the relay leading here hands over directly (no
   * job round trip); a hand-off finding no free slot goes to the queue. `0` sends everything through the
   * job queue. Default: `concurrency`.
   */
  readonly handoffConcurrency?: number;
  /**
   * `statement_timeout` of the engine's own statements in a delivery transaction (reading the partition,
   * recording failures, writing the checkpoint, COMMIT), ms. A handler's statements run under its
   * consumer's `timeoutMs` instead. Default `60000` (`DEFAULTS.statementTimeoutMs`).
   */
  readonly statementTimeoutMs?: number;
  /**
   * How long a process that stops responding — frozen (SIGSTOP, a VM pause, a stalled event loop) or cut
   * off from the database — keeps its relay leadership and its partitions, ms. The server ends its sessions
   * after that long: `idle_session_timeout` and TCP keepalives / `tcp_user_timeout` on the relay's
   * connection, `idle_in_transaction_session_timeout` in delivery transactions (there at least the
   * consumer's `timeoutMs` + 1 s, since a handler may be idle in its transaction up to its timeout). Other
   * processes then take over; the frozen one, when it wakes, finds its sessions gone and cannot commit what
   * others delivered since. At least `3 × pollIntervalMs`. Default `60000` (`DEFAULTS.sessionTimeoutMs`).
   */
  readonly sessionTimeoutMs?: number;
  /** A pino-compatible logger. Default: logs nothing. */
  readonly logger?: Logger;
  /**
   * Keep the process alive through graphile-worker's unhandled rejections when the database is lost (it
   * does not await some job completions). Only those are absorbed, and only while the application has no
   * `unhandledRejection` listener of its own; see `worker-rejections.ts`. Default `true`.
   */
  readonly guardWorkerRejections?: boolean;
};

/** A running engine: relay + graphile-worker + this process's consumers. */
export interface Postbox {
  /** Delivery and relay events, for metrics and logs (see {@link PostboxEventMap}). */
  readonly events: PostboxEvents;
  /**
   * This process's wake-up connection (LISTEN on the log's channel): other readers of the log in the
   * process (a subscription feed) can subscribe to it instead of opening a connection of their own.
   */
  readonly notifier: Notifier;
  /** Wakes the relay for an immediate poll in this process (admin actions NOTIFY it on commit anyway). */
  requestPoll(): void;
  /** True while this process leads the relay. */
  isLeader(): boolean;
  /** False once stopped, or if graphile-worker's runner ended on its own (for readiness checks). */
  isRunning(): boolean;
  /**
   * Stops taking work, lets running drains finish (their transactions commit), stops the relay and the
   * engine's own connections. The application's pool stays open. Idempotent.
   */
  stop(): Promise<void>;
}

/**
 * Starts the engine in this process: registers the consumers, runs graphile-worker with the partition-drain
 * task, and starts the relay. Needs {@link migrate} applied. Reads no environment variables and installs
 * no signal handlers: the application decides when to call `stop()`.
 *
 * @example
 * const postbox = await startPostbox({ pool, consumers: [paymentConsumer], logger });
 * // …
 * await postbox.stop(); // the pool is still yours
 */
export async function startPostbox(options: PostboxOptions): Promise<Postbox> {
  const logger = options.logger ?? silentLogger;
  const concurrency = positiveInteger(options.concurrency ?? DEFAULTS.concurrency, 'concurrency');
  const pollIntervalMs = positiveInteger(options.pollIntervalMs ?? DEFAULTS.pollIntervalMs, 'pollIntervalMs');
  const drainBudgetMs = positiveInteger(options.drainBudgetMs ?? DEFAULTS.drainBudgetMs, 'drainBudgetMs');
  const sessionTimeoutMs = positiveInteger(
    options.sessionTimeoutMs ?? Math.max(DEFAULTS.sessionTimeoutMs, pollIntervalMs * 3),
    'sessionTimeoutMs',
  );
  if (sessionTimeoutMs < pollIntervalMs * 3) {
    throw new TypeError(
      `postbox: sessionTimeoutMs (${sessionTimeoutMs}) must be at least 3 × pollIntervalMs (${pollIntervalMs}): ` +
        'an idle relay connection would be ended between its polls',
    );
  }
  const statementTimeoutMs = positiveInteger(
    options.statementTimeoutMs ?? DEFAULTS.statementTimeoutMs,
    'statementTimeoutMs',
  );
  const handoffConcurrency = options.handoffConcurrency ?? concurrency;
  if (!Number.isInteger(handoffConcurrency) || handoffConcurrency < 0) {
    throw new TypeError('postbox: handoffConcurrency must be a non-negative integer');
  }
  const ownPool =
    'pool' in options
      ? undefined
      : createPool({ connectionString: options.connectionString, max: DEFAULTS.poolSize, logger });
  const pool = 'pool' in options ? options.pool : (ownPool as pg.Pool);
  // The relay's LISTEN connection and graphile-worker's pool connect like the application's pool does.
  const clientConfig: pg.ClientConfig = { ...pool.options };
  const db: EngineDb = createDb(pool);
  const { events, emit } = createPostboxEvents();
  // Live: destinations are added, rebuilt and removed while the process runs (DestinationSync).
  const consumers = new Map(options.consumers.map((consumer) => [consumer.name, consumer]));
  const registry = createEventRegistry([
    ...(options.events ?? []),
    ...options.consumers.flatMap((consumer) => consumer.definitions),
  ]);
  // Each process refreshes its definitions every poll interval: the lease spans several of them.
  const definitionLeaseMs = Math.max(DEFAULTS.definitionLeaseMs, pollIntervalMs * 5);
  const deliverDestinations = options.deliverDestinations ?? true;
  const addressPolicy = options.destinationAddressPolicy ?? {};
  try {
    await checkLogOrder(db);
    await registerConsumers(db, options.consumers, definitionLeaseMs);
    if (deliverDestinations && options.destinations?.length) {
      await registerDestinations(db, options.destinations, { addressPolicy });
    }
  } catch (error) {
    // A pool this call opened is this call's to close: the caller never got a handle to stop.
    await ownPool?.end().catch(() => undefined);
    throw error;
  }
  const unguard = (options.guardWorkerRejections ?? true) ? guardWorkerRejections(logger) : () => {};
  // Resolved once graphile-worker's utilities exist (the runner needs the task, the task needs addJobs).
  let workerUtils: WorkerUtils | undefined;
  const drains = new DrainRunner({
    db,
    consumers,
    registry,
    logger,
    onDelivery: (outcome) => emit('delivery', outcome),
    addJobs: (specs, preserveRunAt) => {
      if (!workerUtils) throw new Error('postbox: worker utilities are not ready');
      return workerUtils.addJobs(specs, preserveRunAt);
    },
    jobBudgetMs: drainBudgetMs,
    localConcurrency: handoffConcurrency,
    maxDrains: concurrency,
    statementTimeoutMs,
    sessionTimeoutMs,
  });
  const drainTask: Task = async (rawPayload, helpers) => {
    const payload = rawPayload as DrainJobPayload;
    emit('job', { consumer: payload.consumer, partition: payload.partition });
    await drains.runJob(
      {
        consumer: payload.consumer,
        partition: payload.partition,
        ...(payload.destination ? { destination: true } : {}),
      },
      helpers.addJobs,
    );
  };
  // Every destination's drains: this process delivers the destinations it has read from the database; one
  // created a moment ago may not be loaded yet, so its job comes back a second later.
  const destinationDrainTask: Task = async (rawPayload, helpers) => {
    const payload = rawPayload as DrainJobPayload;
    if (consumers.has(payload.consumer)) return drainTask(rawPayload, helpers);
    await scheduleDrains(
      helpers.addJobs,
      [{ consumer: payload.consumer, partition: payload.partition, destination: true }],
      new Date(Date.now() + 1000),
    );
  };
  // Jobs queued under the shared task name of earlier versions: run here, or passed on to the consumer's
  // own task (which only processes running that consumer fetch).
  const legacyDrainTask: Task = async (rawPayload, helpers) => {
    const payload = rawPayload as DrainJobPayload;
    if (consumers.has(payload.consumer)) return drainTask(rawPayload, helpers);
    await scheduleDrains(helpers.addJobs, [{ consumer: payload.consumer, partition: payload.partition }]);
  };
  const taskList: Record<string, Task> = { [DRAIN_TASK]: legacyDrainTask };
  for (const name of consumers.keys()) taskList[drainTaskOf(name)] = drainTask;
  if (deliverDestinations) taskList[DESTINATION_DRAIN_TASK] = destinationDrainTask;

  const workerLogger = new WorkerLogger((scope) => (level, message, meta) => {
    const log = logger.child({ worker: scope });
    if (level === 'error') log.error(meta ?? {}, message);
    else if (level === 'warning') log.warn(meta ?? {}, message);
    else log.debug(meta ?? {}, message);
  });
  // graphile-worker's own bookkeeping (fetching, completing and adding drain jobs) runs on a pool of its
  // own with synchronous_commit off: it saves an fsync per job step, and losing such a write in a crash
  // is harmless here — delivery progress lives in the checkpoint, written by the drain's own (durable)
  // transaction on the application's pool; a lost job is re-created by the relay's poll, a lost completion
  // just re-runs a drain that finds nothing new.
  const jobPool = new pg.Pool({
    ...clientConfig,
    max: concurrency * 2 + 4,
    application_name: 'postbox-worker',
    options: '-c synchronous_commit=off',
  });
  jobPool.on('error', (error) => logger.warn({ err: error }, 'idle graphile-worker connection failed'));
  // A checked-out client's loss rejects its query; this keeps its 'error' event from crashing the process.
  jobPool.on('connect', (client) => client.on('error', () => {}));
  let runner: Runner;
  try {
    runner = await run({
      pgPool: jobPool,
      concurrency,
      noHandleSignals: true,
      pollInterval: pollIntervalMs,
      logger: workerLogger,
      taskList,
    });
    workerUtils = await makeWorkerUtils({ pgPool: jobPool, logger: workerLogger });
  } catch (error) {
    await jobPool.end().catch(() => undefined);
    await ownPool?.end().catch(() => undefined);
    unguard();
    throw error;
  }
  const utils = workerUtils;
  // Asynchronous commit for the relay's writes on this connection (the sleep flag; job rows go through
  // graphile-worker's pool): the flag is only a hint, and a job lost in a crash is re-created by the poll.
  // The relay's connection runs a statement at least every poll interval: a session idle for
  // sessionTimeoutMs belongs to a frozen process, and ending it frees the leader lock. Keepalives and
  // tcp_user_timeout let the server notice a host cut off from it within about the same time.
  const keepaliveSeconds = Math.max(1, Math.floor(sessionTimeoutMs / 3000));
  const notifier = new Notifier({
    clientConfig,
    applicationName: 'postbox-relay',
    serverOptions:
      `-c synchronous_commit=off -c idle_session_timeout=${sessionTimeoutMs} ` +
      `-c tcp_keepalives_idle=${keepaliveSeconds} -c tcp_keepalives_interval=${keepaliveSeconds} ` +
      `-c tcp_keepalives_count=2 -c tcp_user_timeout=${sessionTimeoutMs}`,
    logger,
  });
  let relay: Relay | undefined;
  const sender = new WebhookSender(addressPolicy);
  const attemptLog = new AttemptLog(db, logger);
  const destinationSync = deliverDestinations
    ? new DestinationSync({
        db,
        consumers,
        sender,
        logger,
        onAttempt: (attempt) => {
          attemptLog.record(attempt);
          emit('destinationAttempt', attempt);
          const fields = {
            destination: attempt.destination,
            eventId: attempt.eventId,
            status: attempt.status,
            durationMs: Math.round(attempt.durationMs),
            attempt: attempt.attempt,
          };
          if (attempt.outcome === 'delivered') logger.debug(fields, 'destination: delivered');
          else logger.warn({ ...fields, error: attempt.error }, `destination: ${attempt.outcome}`);
        },
        onChange: () => relay?.requestPoll(),
      })
    : undefined;
  relay = new Relay({
    notifier,
    addJobs: utils.addJobs,
    definitions: options.consumers,
    definitionLeaseMs,
    ...(handoffConcurrency === 0 ? {} : { handoff: (targets) => drains.offer(targets) }),
    pollIntervalMs,
    logger,
    onActivity: (kind, scheduled) => emit('relay', { kind, scheduled }),
  });
  await relay.start();
  await destinationSync?.start(notifier, pollIntervalMs);
  const activeRelay = relay;

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
    events,
    notifier,
    requestPoll: () => activeRelay.requestPoll(),
    isLeader: () => activeRelay.isLeader,
    isRunning: () => running && !stopping,
    stop() {
      stopping ??= (async () => {
        destinationSync?.stop();
        await activeRelay.stop();
        await drains.stop();
        await destinationSync?.close();
        await attemptLog.flush();
        await sender.close();
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
        await ownPool?.end();
        unguard();
      })();
      return stopping;
    },
  };
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new TypeError(`postbox: ${name} must be a positive integer (got ${value})`);
  }
  return value;
}
