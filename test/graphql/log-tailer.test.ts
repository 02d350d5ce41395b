import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { defineEvent, type RecordedEvent } from '../../src/engine/outbox/event.ts';
import { createEventRegistry, LOG_START, type LogPoint, pointOf } from '../../src/engine/outbox/read.ts';
import { comparePoints, type EventFilter, readEventPage } from '../../src/graphql/event-log.ts';
import { type LogFeed, LogTailer } from '../../src/graphql/log-tailer.ts';
import { silentLogger } from '../../src/logger.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

const Pinged = defineEvent({ type: 'Pinged', streamType: 'ping', schema: z.object({ n: z.number().int() }) });
const Ponged = defineEvent({ type: 'Ponged', streamType: 'ping', schema: z.object({ n: z.number().int() }) });

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 30 });
});

afterAll(async () => {
  await database?.drop();
});

/** Everything the log holds after `after` that matches, read in one go once writers are done. */
async function expected(after: LogPoint, filter: EventFilter = {}): Promise<string[]> {
  const ids: string[] = [];
  let point = after;
  for (;;) {
    const rows = await readEventPage(database.db, { after: point, limit: 1000, filter });
    ids.push(...rows.map((row) => row.id));
    const last = rows.at(-1);
    if (!last || rows.length < 1000) return ids;
    point = { logXid: last.log_xid, position: last.position };
  }
}

/**
 * Writers whose transactions overlap and commit out of position order (some hold their transaction open a
 * while after appending, some roll back), across several streams.
 */
async function write(count: number, writerId: number, rollbacks = true): Promise<void> {
  for (let i = 0; i < count; i++) {
    const stream = `s${(writerId + i) % 5}`;
    const hold = Math.random() < 0.3 ? 5 + Math.random() * 40 : 0;
    const rollback = rollbacks && Math.random() < 0.1;
    await database.db
      .transaction()
      .execute(async (trx) => {
        const definition = Math.random() < 0.5 ? Pinged : Ponged;
        await appendEvents(trx, [
          definition.create(stream, { n: i }),
          definition.create(stream, { n: i + 1000 }),
        ]);
        if (hold) await sleep(hold);
        if (rollback) throw new Error('rollback');
      })
      .catch((error: Error) => {
        if (error.message !== 'rollback') throw error;
      });
  }
}

/** Drains a feed into an array, optionally slowly (to overflow its buffer). */
function collect(feed: LogFeed, slowMs = 0): { events: RecordedEvent[]; done: Promise<void> } {
  const events: RecordedEvent[] = [];
  const done = (async () => {
    for await (const event of feed) {
      events.push(event);
      if (slowMs && events.length % 10 === 0) await sleep(slowMs);
    }
  })();
  return { events, done };
}

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('LogTailer and LogFeed', () => {
  it('deliver catch-up then live with no gap and no duplicate while writers commit out of order', async () => {
    const tailer = new LogTailer({
      db: database.db,
      connectionString: database.url,
      registry: createEventRegistry([Pinged, Ponged]),
      logger: silentLogger,
      pollIntervalMs: 10,
      // Tiny pages and buffers: force many catch-up pages and buffer overflows back to catch-up.
      pageSize: 7,
      bufferLimit: 5,
    });
    try {
      await Promise.all([write(20, 1), write(20, 2)]);
      const history = await readEventPage(database.db, { limit: 1000 });
      const midpoint = history[Math.floor(history.length / 2)];
      expect(midpoint).toBeDefined();
      const cursor = { logXid: midpoint?.log_xid as string, position: midpoint?.position as string };

      const writers = Promise.all([write(60, 3), write(60, 4), write(60, 5), write(60, 6)]);
      const fromStart = collect(tailer.feed({}, LOG_START));
      const fromCursor = collect(tailer.feed({}, cursor), 15);
      const filter: EventFilter = { streamId: 's2', types: ['Pinged'] };
      const filtered = collect(tailer.feed(filter, LOG_START));
      await sleep(100);
      const liveFeed = tailer.feed({}, 'now');
      await liveFeed.ready();
      const live = collect(liveFeed, 5);
      await writers;

      const all = await expected(LOG_START);
      const afterCursor = await expected(cursor);
      const matching = await expected(LOG_START, filter);
      await until(
        () =>
          fromStart.events.length >= all.length &&
          fromCursor.events.length >= afterCursor.length &&
          filtered.events.length >= matching.length &&
          live.events.at(-1)?.id === all.at(-1),
        'every feed to catch up',
      );
      await sleep(200); // anything extra (a duplicate) would show up now
      expect(fromStart.events.map((event) => event.id)).toEqual(all);
      expect(fromCursor.events.map((event) => event.id)).toEqual(afterCursor);
      expect(filtered.events.map((event) => event.id)).toEqual(matching);
      // Live only: a contiguous tail of the log.
      const liveIds = live.events.map((event) => event.id);
      const first = all.indexOf(liveIds[0] as string);
      expect(first).toBeGreaterThan(0);
      expect(liveIds).toEqual(all.slice(first));
      // Delivered in log order, hence in version order within each stream.
      for (let i = 1; i < fromStart.events.length; i++) {
        const [a, b] = [fromStart.events[i - 1], fromStart.events[i]] as [RecordedEvent, RecordedEvent];
        expect(comparePoints(pointOf(a), pointOf(b))).toBeLessThan(0);
      }
      expect(tailer.subscriberCount).toBe(4);
    } finally {
      await tailer.stop();
    }
    expect(tailer.subscriberCount).toBe(0);
  });

  it('closes a waiting feed at once, and starts a later subscriber from the head of the log', async () => {
    const tailer = new LogTailer({
      db: database.db,
      registry: createEventRegistry([Pinged]),
      logger: silentLogger,
      pollIntervalMs: 10,
    });
    try {
      const feed = tailer.feed({}, 'now');
      const pending = feed.next();
      await sleep(50);
      expect(tailer.subscriberCount).toBe(1);
      await feed.return();
      await expect(pending).resolves.toEqual({ done: true, value: undefined });
      expect(tailer.subscriberCount).toBe(0);
      await sleep(50); // the tailer goes idle

      await write(3, 9, false);
      const later = tailer.feed({}, 'now');
      const next = later.next();
      await later.ready();
      await write(1, 10, false);
      const received = await next;
      const newest = await expected(LOG_START);
      // The first event it sees is one of the two written after it subscribed, not history.
      expect(newest.slice(-2)).toContain(received.value?.id);
      await later.return();
    } finally {
      await tailer.stop();
    }
  });
});
