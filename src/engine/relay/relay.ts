import { setTimeout as sleep } from 'node:timers/promises';
import type { AddJobsFunction } from 'graphile-worker';
import pg from 'pg';
import { LEADER_LOCK_KEY } from '../db/lock-keys.ts';
import type { Logger } from '../logger.ts';
import { READABLE_HORIZON } from '../outbox/horizon.ts';
import { WAKE_CHANNEL } from '../outbox/wake-channel.ts';
import { type DrainTarget, scheduleDrains } from './schedule.ts';

/** Events one scan reads at most. */
const SCAN_LIMIT = 5000;

/** Pause between scans while awake and caught up (see work()). */
const AWAKE_SCAN_INTERVAL_MS = 2;

/** Options of {@link Relay}. */
export interface RelayOptions {
  /** How to open the dedicated LISTEN connection (a pool connection cannot hold LISTEN or a session lock reliably). */
  readonly clientConfig: pg.ClientConfig;
  /** Consumers this process knows; only they are scheduled. */
  readonly consumers: readonly string[];
  readonly addJobs: AddJobsFunction;
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

interface ScanRow {
  count: number;
  last_xid: string | null;
  last_position: string | null;
  targets: DrainTarget[] | null;
  woke: number;
  unreadable: boolean;
  xmin: string;
}

/**
 * Turns committed events into drain jobs.
 *
 * One relay per database leads (session advisory lock); the others stand by and take over when the
 * leader's connection dies. The leader keeps a cursor in log order and, for each batch of newly readable
 * events, enqueues one drain job per (consumer, partition) concerned — one `add_jobs` call per batch.
 *
 * Wake-ups: while it has nothing to do, the leader marks itself asleep in `outbox.relay_state` and waits
 * on LISTEN; writers send a NOTIFY only then (see migration 000001). NOTIFY is only a hint: every
 * `pollIntervalMs` the leader also looks for every partition that has readable events past its
 * checkpoint, a retry due or a redrive requested, so a lost notification or a crashed drain delays
 * delivery by at most one interval and never loses it.
 */
export class Relay {
  private client: pg.Client | undefined;
  private leader = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private pendingWake = false;
  private pollRequested = true;
  private cursor: { logXid: string; position: string } | undefined;
  private lastPollAt = 0;
  /** What we last wrote to `outbox.relay_state.sleeping` (skips redundant writes). */
  private asleep = false;
  private readonly options: RelayOptions;

  constructor(options: RelayOptions) {
    this.options = options;
  }

  /** True while this process is the leader. */
  get isLeader(): boolean {
    return this.leader;
  }

  /** Starts the loop; resolves once the first connection attempt is done (leader or not). */
  async start(): Promise<void> {
    await this.connect().catch((error: unknown) =>
      this.options.logger.warn({ err: error }, 'relay: connect failed'),
    );
    this.loop = this.run();
  }

  /** Stops the loop and closes the connection (releasing leadership). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
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
        if (!this.client) await this.connect();
        if (!this.leader) {
          await this.tryLead();
          if (!this.leader) {
            await this.waitForWake(this.options.pollIntervalMs);
            continue;
          }
        }
        await this.work();
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
  private async work(): Promise<void> {
    const client = this.client as pg.Client;
    if (this.pollRequested || Date.now() - this.lastPollAt >= this.options.pollIntervalMs) {
      await this.poll(client);
    }
    const first = await this.scan(client);
    if (first.count > 0) {
      // Awake under load writers send no NOTIFY, so the relay paces itself: a partial batch means it is
      // caught up; waiting 2 ms lets events accumulate into the next scan instead of spinning a core on
      // back-to-back scans (measured: an unpaced relay halved append throughput on 2 cores).
      if (first.count < SCAN_LIMIT) await this.waitForWake(AWAKE_SCAN_INTERVAL_MS);
      return;
    }
    const untilPoll = () => this.options.pollIntervalMs - (Date.now() - this.lastPollAt);
    if (this.asleep) {
      // Already marked asleep (woken by a NOTIFY whose events are not readable yet, or by a poll request).
      // Committed events held behind an older running transaction get a short look until readable.
      if (first.unreadable) await this.waitForWake(10);
      else if (untilPoll() > 0) await this.waitForWake(untilPoll());
      return;
    }
    // Mark asleep, then look once more: a writer that read "awake" just before did not NOTIFY.
    await client.query(
      `insert into outbox.relay_state (sleeping) values (true)
       on conflict (id) do update set sleeping = true, updated_at = now()`,
    );
    this.asleep = true;
    const { rows } = await client.query<{ horizon: string }>(
      'select pg_snapshot_xmax(pg_current_snapshot())::text as horizon',
    );
    const horizon = rows[0]?.horizon ?? '0';
    for (;;) {
      const again = await this.scan(client);
      if (this.stopped || again.count > 0) return;
      // Transactions that started before we were marked asleep may commit events without a NOTIFY: keep
      // looking every 2 ms until all of them have ended (one cheap query each; usually a few ms — a drain
      // transaction finishing). Later writers see "asleep" and notify.
      if (BigInt(again.xmin) >= BigInt(horizon) && !again.unreadable) break;
      if (await this.waitForWake(2)) return;
    }
    if (untilPoll() > 0) await this.waitForWake(untilPoll());
  }

  /**
   * Schedules drains for newly readable events after the cursor. ONE statement reads the batch
   * gap-safely, computes the (consumer, partition) pairs concerned, and marks the relay awake if it had
   * marked itself asleep (writers stop sending NOTIFYs). The pairs go to this process's drains directly
   * ({@link RelayOptions.handoff}) while it has free slots; the rest become drain jobs in one `add_jobs`
   * call. Advancing the cursor before the drains commit is safe: whatever a crash loses here is after a
   * checkpoint, where the poll finds it.
   */
  private async scan(client: pg.Client): Promise<{ count: number; unreadable: boolean; xmin: string }> {
    if (!this.cursor) await this.initCursor(client);
    const cursor = this.cursor as { logXid: string; position: string };
    const { rows } = await client.query<ScanRow>(
      `with batch as (
         select e.log_xid, e.position, e.type, e.stream_type, e.stream_id
         from outbox.events e
         where (e.log_xid, e.position) > ($1::xid8, $2::bigint)
           and e.log_xid < ${READABLE_HORIZON}
         order by e.log_xid, e.position
         limit ${SCAN_LIMIT}
       ), last as (
         select log_xid, position from batch order by log_xid desc, position desc limit 1
       ), targets as (
         select distinct c.name as consumer, outbox.partition_of(b.stream_id, c.partitions) as partition
         from batch b
         join outbox.consumers c on b.type = any (c.event_types)
           and (c.stream_types is null or b.stream_type = any (c.stream_types))
         where c.status = 'active' and c.name = any ($3::text[])
       ), awake as (
         update outbox.relay_state set sleeping = false, updated_at = now()
         where sleeping and $4::boolean and exists (select 1 from batch)
         returning 1
       )
       select (select count(*) from batch)::int as count,
              (select log_xid::text from last) as last_xid,
              (select position::text from last) as last_position,
              (select json_agg(json_build_object('consumer', consumer, 'partition', partition)) from targets)
                as targets,
              (select count(*) from awake)::int as woke,
              not exists (select 1 from batch)
                and exists (select 1 from outbox.events e
                            where (e.log_xid, e.position) > ($1::xid8, $2::bigint)) as unreadable,
              ${READABLE_HORIZON}::text as xmin`,
      [cursor.logXid, cursor.position, this.options.consumers, this.asleep],
    );
    const row = rows[0];
    const xmin = row?.xmin ?? '0';
    if (!row || row.count === 0) return { count: 0, unreadable: row?.unreadable ?? false, xmin };
    if (row.woke > 0 || this.asleep) this.asleep = false;
    this.cursor = { logXid: row.last_xid as string, position: row.last_position as string };
    const targets = row.targets ?? [];
    const queued = this.options.handoff ? this.options.handoff(targets) : targets;
    await scheduleDrains(this.options.addJobs, queued);
    this.options.onActivity?.('scan', targets.length);
    return { count: row.count, unreadable: false, xmin };
  }

  /** Schedules every partition that has readable events past its checkpoint, a due retry, or a redrive. */
  private async poll(client: pg.Client): Promise<void> {
    this.pollRequested = false;
    this.lastPollAt = Date.now();
    const { rows } = await client.query<DrainTarget>(
      `select c.name as consumer, p.partition
       from outbox.consumers c
       join outbox.consumer_partitions p on p.consumer = c.name
       where c.status = 'active' and c.name = any ($1::text[])
         -- The ordered subquery walks the log-order index forward from the checkpoint and stops at the first
         -- match; with the filters inline the planner chose a sequential scan of the whole log.
         and (exists (select 1
                      from (select e.type, e.stream_type, e.stream_id from outbox.events e
                            where (e.log_xid, e.position) > (p.checkpoint_xid, p.checkpoint_position)
                              and e.log_xid < ${READABLE_HORIZON}
                            order by e.log_xid, e.position) e
                      where e.type = any (c.event_types)
                        and (c.stream_types is null or e.stream_type = any (c.stream_types))
                        and outbox.partition_of(e.stream_id, c.partitions) = p.partition)
              or exists (select 1 from outbox.blocked_streams b
                         where b.consumer = c.name and b.partition = p.partition and b.next_attempt_at <= now())
              or exists (select 1 from outbox.dead_letters d
                         where d.consumer = c.name and d.partition = p.partition
                           and d.redrive_requested_at is not null and d.redriven_at is null))`,
      [this.options.consumers],
    );
    await scheduleDrains(this.options.addJobs, rows);
    this.options.onActivity?.('poll', rows.length);
  }

  /** New leader: start the scan at the current end of the readable log; the poll covers everything before. */
  private async initCursor(client: pg.Client): Promise<void> {
    const { rows } = await client.query<{ log_xid: string; position: string }>(
      `select log_xid::text, position::text from outbox.events
       where log_xid < ${READABLE_HORIZON}
       order by log_xid desc, position desc limit 1`,
    );
    this.cursor = rows[0]
      ? { logXid: rows[0].log_xid, position: rows[0].position }
      : { logXid: '0', position: '0' };
    await this.poll(client);
  }

  private async connect(): Promise<void> {
    // Asynchronous commit for the relay's writes (job rows, the sleep flag): a job lost in a crash is
    // re-created by the next poll, and the flag is only a hint.
    const client = new pg.Client({
      ...this.options.clientConfig,
      application_name: 'postbox-relay',
      options: '-c synchronous_commit=off',
    });
    client.on('error', (error) => {
      this.options.logger.warn({ err: error }, 'relay: connection error');
      if (this.client === client) {
        this.client = undefined;
        this.leader = false;
        this.wake?.();
      }
    });
    client.on('notification', (message) => {
      if (message.payload === 'poll') this.pollRequested = true;
      this.options.onActivity?.('wakeup', 0);
      this.pendingWake = true;
      this.wake?.();
    });
    await client.connect();
    await client.query(`listen ${WAKE_CHANNEL}`);
    this.client = client;
  }

  private async tryLead(): Promise<void> {
    const client = this.client as pg.Client;
    const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [
      LEADER_LOCK_KEY,
    ]);
    this.leader = rows[0]?.locked === true;
    if (this.leader) {
      this.cursor = undefined; // re-read: events may have arrived while another process led
      this.pollRequested = true;
      this.options.logger.info({}, 'relay: leading');
    }
  }

  private async disconnect(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.leader = false;
    this.cursor = undefined;
    this.asleep = false; // unknown after a reconnect; the next sleep writes it again
    if (client) await client.end().catch(() => undefined);
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
