import { setTimeout as sleep } from 'node:timers/promises';
import type { AddJobsFunction } from 'graphile-worker';
import type pg from 'pg';
import type { Logger } from '../logger.ts';
import type { LogPoint } from '../outbox/read.ts';
import { type DefinitionTypes, storeLiveDefinitions, touchDefinitions } from '../sql/consumer-definitions.ts';
import { fastForwardPartitions } from '../sql/fast-forward-partitions.ts';
import { pollPartitions } from '../sql/poll-partitions.ts';
import { markRelayAsleep, readSnapshotXmax } from '../sql/relay-state.ts';
import { readLogHeadOn, SCAN_LIMIT, scanLog } from '../sql/scan-log.ts';
import { tryLead } from './elector.ts';
import type { Notifier } from './notifier.ts';
import { type DrainTarget, scheduleDrains } from './schedule.ts';

/** Pause between scans while awake and caught up (see work()). */
const AWAKE_SCAN_INTERVAL_MS = 2;

/**
 * Looks while asleep at events that may arrive without a NOTIFY (transactions older than the sleep mark) or
 * that wait behind an older running transaction: first after 2 ms, doubling up to 50 ms — a short drain
 * transaction is seen at once, a long transaction costs 20 scans a second instead of 500.
 */
const HORIZON_LOOK_FIRST_MS = 2;
const HORIZON_LOOK_MAX_MS = 50;

/** Options of {@link Relay}. */
export interface RelayOptions {
  /** The process's wake-up connection; the relay also holds its leader lock and runs its scans on it. */
  readonly notifier: Notifier;
  readonly addJobs: AddJobsFunction;
  /** The consumer definitions this process runs: refreshed every poll interval, leader or not. */
  readonly definitions: readonly DefinitionTypes[];
  /** A definition not refreshed for this long is retired (the leader drops its types at its poll), ms. */
  readonly definitionLeaseMs: number;
  /**
   * Direct hand-off of a scan's partitions to drains in this process; returns those it did not take, which
   * are enqueued. Omitted: every partition is enqueued.
   */
  readonly handoff?: (targets: readonly DrainTarget[]) => DrainTarget[];
  /** The guarantee behind the wake-ups: every this many ms the relay looks for any partition with work. */
  readonly pollIntervalMs: number;
  readonly logger: Logger;
  /** Observes relay activity (metrics). */
  readonly onActivity?: (kind: 'wakeup' | 'poll' | 'scan', scheduled: number) => void;
}

/**
 * Turns committed events into drains.
 *
 * One relay per database leads ({@link tryLead}); the others stand by and take over when the leader's
 * connection dies. The leader keeps a cursor in log order and, for each batch of newly readable events,
 * hands the (consumer, partition) pairs concerned to this process's drains or enqueues drain jobs — one
 * `add_jobs` call per batch. It schedules every active consumer registered in the database, not only
 * those of its own process: another deployment's consumers get their jobs whichever process leads (each
 * consumer's jobs go to its own graphile-worker task, which only processes running it fetch).
 *
 * Wake-ups: while it has nothing to do, the leader marks itself asleep (`outbox.relay_sleeping`) and waits
 * for a NOTIFY; writers send one only then (see migration 000001). NOTIFY is only a hint: every
 * `pollIntervalMs` the leader also looks for every partition that has readable events past its
 * checkpoint, a retry due or a redrive requested, so a lost notification or a crashed drain delays
 * delivery by at most one interval and never loses it.
 */
export class Relay {
  private leader = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private pendingWake = false;
  private pollRequested = true;
  private cursor: LogPoint | undefined;
  private lastPollAt = 0;
  private lastTouchAt = 0;
  /** What we last wrote to `outbox.relay_sleeping` (skips redundant writes). */
  private asleep = false;
  /**
   * Set when the relay marked itself asleep: transactions below this xid may have read "awake" and will not
   * NOTIFY, so the relay keeps looking until the readable horizon passes it.
   */
  private sleepHorizon: string | undefined;
  /** The current pause between those looks (backs off while an old transaction stays open). */
  private horizonLookMs = HORIZON_LOOK_FIRST_MS;
  private readonly options: RelayOptions;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(options: RelayOptions) {
    this.options = options;
  }

  /** True while this process is the leader. */
  get isLeader(): boolean {
    return this.leader;
  }

  /** Starts the loop; resolves once the first connection attempt is done (leader or not). */
  async start(): Promise<void> {
    const { notifier } = this.options;
    this.unsubscribe.push(
      notifier.subscribe((payload) => {
        if (payload === 'poll') this.pollRequested = true;
        this.options.onActivity?.('wakeup', 0);
        this.pendingWake = true;
        this.wake?.();
      }),
      notifier.onLost(() => {
        this.leader = false;
        this.wake?.();
      }),
    );
    await notifier
      .connect()
      .catch((error: unknown) => this.options.logger.warn({ err: error }, 'relay: connect failed'));
    this.loop = this.run();
  }

  /** Stops the loop and closes the connection (releasing leadership). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
    await this.disconnect();
  }

  /** Asks the leader for a poll now (e.g. after a replay or redrive). Works in any process. */
  requestPoll(): void {
    this.pollRequested = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        const client = await this.options.notifier.connect();
        if (Date.now() - this.lastTouchAt >= this.options.pollIntervalMs) {
          this.lastTouchAt = Date.now();
          await touchDefinitions((text, values) => client.query(text, values), this.options.definitions);
        }
        if (!this.leader) {
          await this.lead(client);
          if (!this.leader) {
            await this.waitForWake(this.options.pollIntervalMs);
            continue;
          }
        }
        await this.work(client);
        failures = 0;
      } catch (error) {
        failures++;
        this.options.logger.warn({ err: error, failures }, 'relay: lost its connection; reconnecting');
        await this.disconnect();
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  /** One leader iteration: scan; if idle, sleep until a wake-up or the next poll. */
  private async work(client: pg.Client): Promise<void> {
    if (this.pollRequested || Date.now() - this.lastPollAt >= this.options.pollIntervalMs) {
      await this.poll(client);
    }
    const first = await this.scan(client);
    if (first.count > 0) {
      this.sleepHorizon = undefined;
      // Awake under load writers send no NOTIFY, so the relay paces itself: a partial batch means it is
      // caught up; waiting 2 ms lets events accumulate into the next scan instead of spinning a core on
      // back-to-back scans (an unpaced relay halved append throughput on 2 cores).
      if (first.count < SCAN_LIMIT) await this.waitForWake(AWAKE_SCAN_INTERVAL_MS);
      return;
    }
    const untilPoll = () => this.options.pollIntervalMs - (Date.now() - this.lastPollAt);
    if (!this.asleep) {
      // Mark asleep, then look once more (the next call): a writer that read "awake" just before did not
      // NOTIFY.
      await markRelayAsleep(client);
      this.asleep = true;
      this.sleepHorizon = await readSnapshotXmax(client);
      this.horizonLookMs = HORIZON_LOOK_FIRST_MS;
      return;
    }
    if (this.sleepHorizon !== undefined && BigInt(first.xmin) >= BigInt(this.sleepHorizon)) {
      this.sleepHorizon = undefined; // every transaction that may have read "awake" has ended
    }
    if (this.sleepHorizon !== undefined || first.unreadable) {
      // Transactions older than the sleep mark may still commit events without a NOTIFY, or committed events
      // wait behind an older running transaction: look again soon, backing off, and never past the poll
      // (this loop returns to work(), which polls when due).
      await this.waitForWake(Math.max(1, Math.min(this.horizonLookMs, untilPoll())));
      this.horizonLookMs = Math.min(this.horizonLookMs * 2, HORIZON_LOOK_MAX_MS);
      return;
    }
    this.horizonLookMs = HORIZON_LOOK_FIRST_MS;
    if (untilPoll() > 0) await this.waitForWake(untilPoll());
  }

  /**
   * Schedules drains for newly readable events after the cursor ({@link scanLog}). The pairs go to this
   * process's drains directly ({@link RelayOptions.handoff}) while it has free slots; the rest become drain
   * jobs in one `add_jobs` call. Advancing the cursor before the drains commit is safe: whatever a crash
   * loses here is after a checkpoint, where the poll finds it.
   */
  private async scan(client: pg.Client): Promise<{ count: number; unreadable: boolean; xmin: string }> {
    if (!this.cursor) {
      this.cursor = await readLogHeadOn(client);
      await this.poll(client); // a new leader: the poll covers everything before its cursor
    }
    const result = await scanLog(client, this.cursor, this.asleep);
    if (result.count === 0 || !result.last) {
      return { count: 0, unreadable: result.unreadable, xmin: result.xmin };
    }
    if (result.woke || this.asleep) {
      this.asleep = false;
      this.sleepHorizon = undefined;
    }
    this.cursor = result.last;
    const queued = this.options.handoff ? this.options.handoff(result.targets) : result.targets;
    await scheduleDrains(this.options.addJobs, queued);
    this.options.onActivity?.('scan', result.targets.length);
    return { count: result.count, unreadable: false, xmin: result.xmin };
  }

  /**
   * Moves idle checkpoints past the events their consumers do not want ({@link fastForwardPartitions}), then
   * schedules every partition that has readable events past its checkpoint, a due retry, or a redrive.
   */
  private async poll(client: pg.Client): Promise<void> {
    this.pollRequested = false;
    this.lastPollAt = Date.now();
    // Retire the types of definitions no running process refreshed within the lease.
    await storeLiveDefinitions((text, values) => client.query(text, values), this.options.definitionLeaseMs);
    try {
      await fastForwardPartitions(client);
    } catch (error) {
      // Only an optimisation (the next poll tries again): a replay updating the same rows in another order
      // can make it a deadlock's victim (40P01). Anything else is the relay's connection's problem.
      if ((error as { code?: unknown }).code !== '40P01') throw error;
      this.options.logger.warn({ err: error }, 'relay: fast-forward of idle checkpoints failed');
    }
    const targets = await pollPartitions(client);
    // Through the hand-off like a scan's: under steady writes every partition is behind at each poll, and
    // a queued job for a partition already draining here only costs a job round trip.
    const queued = this.options.handoff ? this.options.handoff(targets) : targets;
    await scheduleDrains(this.options.addJobs, queued);
    this.options.onActivity?.('poll', targets.length);
  }

  private async lead(client: pg.Client): Promise<void> {
    this.leader = await tryLead(client);
    if (this.leader) {
      this.cursor = undefined; // re-read: events may have arrived while another process led
      this.pollRequested = true;
      this.options.logger.info({}, 'relay: leading');
    }
  }

  private async disconnect(): Promise<void> {
    this.leader = false;
    this.cursor = undefined;
    this.asleep = false; // unknown after a reconnect; the next sleep writes it again
    this.sleepHorizon = undefined;
    await this.options.notifier.disconnect();
  }

  /** Waits up to `ms` for a notification (or stop); true if woken by one. */
  private waitForWake(ms: number): Promise<boolean> {
    if (this.pendingWake || this.stopped) {
      this.pendingWake = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve(false);
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        this.pendingWake = false;
        resolve(true);
      };
    });
  }
}
