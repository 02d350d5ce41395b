import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { RecordedEvent } from '../engine/index.ts';
import {
  type EventRegistry,
  LOG_START,
  type LogPoint,
  Notifier,
  pointOf,
  readLogAfter,
} from '../engine/index.ts';
import type { Logger } from '../logger.ts';
import {
  comparePoints,
  type EventFilter,
  matchesFilter,
  readEventPage,
  readLogHead,
  toFeedEvent,
} from './event-log.ts';

/** Options of {@link LogTailer}. */
export interface LogTailerOptions {
  // biome-ignore lint/suspicious/noExplicitAny: the tailer only runs raw SQL; any Kysely database will do
  readonly db: Kysely<any>;
  /**
   * The process's wake-up connection, shared with the engine when it runs here (`postbox.notifier`).
   * Omitted: the tailer opens its own from `connectionString`.
   */
  readonly notifier?: Notifier | undefined;
  /** For a LISTEN connection of its own (wake-up hints) when no notifier is shared. Omitted: polling only. */
  readonly connectionString?: string | undefined;
  /** Upcasts payloads before they reach subscribers. */
  readonly registry: EventRegistry;
  readonly logger: Logger;
  /** How often the log is read while anyone is subscribed, ms. Default `50`. */
  readonly pollIntervalMs?: number;
  /** Rows per read (the tailer's and each catch-up's). Default `500`. */
  readonly pageSize?: number;
  /**
   * Live events a subscriber may have waiting before it is switched back to reading the log itself (it
   * then catches up from its last delivered event: a slow subscriber costs reads, not memory). Default `1000`.
   */
  readonly bufferLimit?: number;
}

/**
 * The subscription feed of one API process: ONE log reader fanning committed events out to every
 * subscriber, instead of one poller per subscriber.
 *
 * While anyone is subscribed it reads the log after its own point with `readLogAfter` (gap-safe: only rows
 * below the oldest running transaction, so nothing can later appear behind it) every `pollIntervalMs`, and
 * at once when a NOTIFY on `postbox_events` arrives. NOTIFY is only a hint (writers skip it while the relay
 * is busy): polling is what guarantees delivery. With nobody subscribed it does nothing.
 *
 * Subscribers are {@link LogFeed}s; see there for how catch-up joins the live stream without gap or duplicate.
 */
export class LogTailer {
  private readonly feeds = new Set<LogFeed>();
  /** Everything at or before this point has been fanned out (undefined while idle). */
  private point: LogPoint | undefined;
  private pointWaiters: Array<() => void> = [];
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private stopped = false;
  /** The notifier this tailer opened itself (when none was shared), and its subscription. */
  private ownNotifier: Notifier | undefined;
  private unsubscribe: (() => void) | undefined;
  private lastListenAttempt = 0;
  private readonly options: LogTailerOptions;
  private readonly pollIntervalMs: number;
  readonly pageSize: number;
  readonly bufferLimit: number;

  constructor(options: LogTailerOptions) {
    this.options = options;
    this.pollIntervalMs = options.pollIntervalMs ?? 50;
    this.pageSize = options.pageSize ?? 500;
    this.bufferLimit = options.bufferLimit ?? 1000;
  }

  /** Subscribers right now. */
  get subscriberCount(): number {
    return this.feeds.size;
  }

  /**
   * A feed of the events matching `filter`: after `start` (catch-up, then live), or — with `'now'` — only
   * events that become readable from now on.
   */
  feed(filter: EventFilter, start: LogPoint | 'now'): LogFeed {
    return new LogFeed(this, filter, start);
  }

  /** Ends every feed (their iterators complete) and stops reading. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const feed of [...this.feeds]) await feed.return();
    this.wake();
    await this.loop;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.ownNotifier?.disconnect();
  }

  /** @internal Registers a feed; resolves with the tailer's point once it has one (see {@link LogFeed}). */
  async attach(feed: LogFeed): Promise<LogPoint> {
    if (this.stopped) throw new Error('The API is shutting down');
    this.feeds.add(feed);
    this.loop ??= this.run();
    this.wake();
    if (!this.point) await new Promise<void>((resolve) => this.pointWaiters.push(resolve));
    if (this.stopped || !this.point) throw new Error('The API is shutting down');
    return this.point;
  }

  /** @internal */
  detach(feed: LogFeed): void {
    this.feeds.delete(feed);
  }

  /** @internal Reads one page for a feed's catch-up, as recorded events. */
  async readPage(after: LogPoint, filter: EventFilter): Promise<RecordedEvent[]> {
    const rows = await readEventPage(this.options.db, { after, limit: this.pageSize, filter });
    return rows.map((row) => toFeedEvent(row, this.options.registry));
  }

  private wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  private async waitForWake(timeoutMs: number | undefined): Promise<void> {
    if (this.woken || this.stopped) {
      this.woken = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(resolve, timeoutMs);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wakeUp = undefined;
    this.woken = false;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      if (this.feeds.size === 0) {
        // Idle: forget the point. The next subscriber starts from the head of the log as it is then.
        this.point = undefined;
        await this.waitForWake(undefined);
        continue;
      }
      try {
        if (!this.point) {
          this.point = await readLogHead(this.options.db);
          for (const resolve of this.pointWaiters.splice(0)) resolve();
        }
        await this.listen();
        const page = await readLogAfter(this.options.db, { after: this.point, limit: this.pageSize });
        if (page.rows.length > 0) {
          const events = page.rows.map((row) => toFeedEvent(row, this.options.registry));
          for (const feed of this.feeds) feed.push(events);
          this.point = page.next;
        }
        failures = 0;
        if (page.rows.length < this.pageSize) await this.waitForWake(this.pollIntervalMs);
      } catch (error) {
        failures++;
        this.options.logger.warn(
          { err: error, failures },
          'subscription feed: reading the log failed; retrying',
        );
        await sleep(Math.min(5000, 50 * 2 ** Math.min(failures, 7)));
      }
    }
    for (const resolve of this.pointWaiters.splice(0)) resolve();
  }

  /** Keeps wake-ups coming (a shared notifier, or one of its own); failures only cost latency. */
  private async listen(): Promise<void> {
    if (this.stopped) return;
    if (this.options.notifier) {
      this.unsubscribe ??= this.options.notifier.subscribe(() => this.wake());
      return;
    }
    if (!this.options.connectionString) return;
    if (!this.ownNotifier) {
      this.ownNotifier = new Notifier({
        clientConfig: { connectionString: this.options.connectionString },
        applicationName: 'postbox-api-listen',
        logger: this.options.logger,
      });
      this.unsubscribe = this.ownNotifier.subscribe(() => this.wake());
    }
    if (this.ownNotifier.client || Date.now() - this.lastListenAttempt < 5000) return;
    this.lastListenAttempt = Date.now();
    try {
      await this.ownNotifier.connect();
      if (this.stopped) await this.ownNotifier.disconnect();
    } catch (error) {
      this.options.logger.debug({ err: error }, 'subscription feed: LISTEN failed; polling only');
    }
  }
}

/**
 * One subscriber's stream of events: an async iterator that can be closed at any moment (`return()`
 * resolves a pending `next()` at once, so a disconnecting client releases its feed immediately).
 *
 * How catch-up meets live without gap or duplicate:
 * 1. The feed registers with the tailer first; from then on every event the tailer fans out that matches
 *    lands in the feed's buffer (in log order).
 * 2. It then reads the log itself from its cursor, page by page, until a page comes back short. Those reads
 *    start after registration, so they see at least everything the tailer had fanned out before it.
 * 3. Then it drains the buffer, dropping every event at or before the last one it delivered.
 * Together they cover the log after the cursor; the comparison on (log_xid, position) removes the overlap.
 * A buffer that outgrows `bufferLimit` is dropped and the feed goes back to step 2 from its last delivered
 * event, so memory stays bounded however slow the client.
 */
export class LogFeed implements AsyncIterableIterator<RecordedEvent> {
  private readonly tailer: LogTailer;
  private readonly filter: EventFilter;
  private readonly start: LogPoint | 'now';
  private point: LogPoint | undefined;
  private attached: Promise<void> | undefined;
  private catchingUp: boolean;
  private page: RecordedEvent[] = [];
  private buffer: RecordedEvent[] = [];
  private overflowed = false;
  private closed = false;
  private signal: (() => void) | undefined;

  constructor(tailer: LogTailer, filter: EventFilter, start: LogPoint | 'now') {
    this.tailer = tailer;
    this.filter = filter;
    this.start = start;
    this.catchingUp = start !== 'now';
  }

  /**
   * Registers with the tailer (done by the first `next()` otherwise). After it resolves, no event that
   * becomes readable can be missed: call it before reading state the events will then update.
   */
  ready(): Promise<void> {
    if (this.closed && !this.attached) return Promise.resolve();
    this.attached ??= this.tailer.attach(this).then((tailerPoint) => {
      this.point = this.start === 'now' ? tailerPoint : this.start;
    });
    return this.attached;
  }

  /** @internal Called by the tailer with each batch it read, in log order. */
  push(events: readonly RecordedEvent[]): void {
    if (this.closed || this.overflowed) return;
    for (const event of events) {
      if (matchesFilter(event, this.filter)) this.buffer.push(event);
    }
    if (this.buffer.length > this.tailer.bufferLimit) {
      this.buffer = [];
      this.overflowed = true;
    }
    this.notify();
  }

  async next(): Promise<IteratorResult<RecordedEvent>> {
    try {
      await this.ready();
    } catch (error) {
      if (this.closed) return { done: true, value: undefined }; // closed while the API shuts down
      throw error;
    }
    for (;;) {
      if (this.closed) return { done: true, value: undefined };
      const point = this.point ?? LOG_START;
      const fromPage = this.page.shift();
      if (fromPage) return this.deliver(fromPage);
      if (this.overflowed) {
        this.overflowed = false;
        this.buffer = [];
        this.catchingUp = true;
      }
      if (this.catchingUp) {
        this.page = await this.tailer.readPage(point, this.filter);
        if (this.page.length < this.tailer.pageSize) this.catchingUp = false;
        continue;
      }
      const live = this.buffer.shift();
      if (live) {
        if (comparePoints(pointOf(live), point) > 0) return this.deliver(live);
        continue; // already delivered by the catch-up read
      }
      await new Promise<void>((resolve) => {
        this.signal = resolve;
      });
      this.signal = undefined;
    }
  }

  /** Closes the feed; a pending `next()` resolves as done. */
  async return(): Promise<IteratorResult<RecordedEvent>> {
    if (!this.closed) {
      this.closed = true;
      this.buffer = [];
      this.page = [];
      this.tailer.detach(this);
      this.notify();
    }
    return { done: true, value: undefined };
  }

  async throw(error?: unknown): Promise<IteratorResult<RecordedEvent>> {
    await this.return();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private deliver(event: RecordedEvent): IteratorResult<RecordedEvent> {
    this.point = pointOf(event);
    return { done: false, value: event };
  }

  private notify(): void {
    this.signal?.();
  }
}
