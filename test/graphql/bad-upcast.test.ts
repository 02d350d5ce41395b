import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { defineEvent } from '../../src/engine/outbox/event.ts';
import { createEventRegistry, LOG_START } from '../../src/engine/outbox/read.ts';
import type { FeedEvent } from '../../src/graphql/event-log.ts';
import { LogTailer } from '../../src/graphql/log-tailer.ts';
import { silentLogger } from '../../src/logger.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

// One stored event whose upcaster throws must not stop the subscription feed: subscribers get the rest of the
// log, and that event with its stored payload and a clear error.

/** Version 1, as an older release wrote it. */
const ZappedV1 = defineEvent({ type: 'Zapped', streamType: 'zap', schema: z.object({ volts: z.number() }) });
/** Version 2, as the API knows it: its upcaster refuses negative volts. */
const Zapped = defineEvent({
  type: 'Zapped',
  streamType: 'zap',
  schemaVersion: 2,
  schema: z.object({ millivolts: z.number().nonnegative() }),
  upcasters: {
    1: (v1: { volts: number }) => {
      if (v1.volts < 0) throw new Error(`negative volts: ${v1.volts}`);
      return { millivolts: v1.volts * 1000 };
    },
  },
});

let database: TestDatabase;
let tailer: LogTailer;

beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 10 });
  tailer = new LogTailer({
    db: database.db,
    registry: createEventRegistry([Zapped]),
    logger: silentLogger,
    pollIntervalMs: 10,
  });
});
afterAll(async () => {
  await tailer?.stop();
  await database?.drop();
});

describe('an event whose upcaster throws', () => {
  it('reaches live and catching-up subscribers with its stored payload and the error; the events after it follow', async () => {
    const live = tailer.feed({}, 'now');
    const first = live.next(); // attaches the feed
    await waitFor('live feed attached', async () => tailer.subscriberCount > 0);
    await new Promise((resolve) => setTimeout(resolve, 300)); // its starting point is read
    for (const event of [
      ZappedV1.create('z', { volts: 1 }),
      ZappedV1.create('z', { volts: -1 }),
      Zapped.create('z', { millivolts: 5 }),
    ]) {
      await database.db.transaction().execute((trx) => appendEvents(trx, [event]));
    }
    const received: FeedEvent[] = [(await first).value as FeedEvent];
    for (let i = 0; i < 2; i++) {
      const next = await Promise.race([
        live.next(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('feed stalled')), 10_000)),
      ]);
      received.push(next.value as FeedEvent);
    }
    await live.return();

    const catchUp = tailer.feed({}, LOG_START);
    const replayed: FeedEvent[] = [];
    for (let i = 0; i < 3; i++) replayed.push((await catchUp.next()).value as FeedEvent);
    await catchUp.return();

    for (const events of [received, replayed]) {
      expect(events.map((event) => event.streamVersion)).toEqual([1, 2, 3]);
      expect(events[0]).toMatchObject({ payload: { millivolts: 1000 }, schemaVersion: 2 });
      expect(events[0]?.upcastError).toBeUndefined();
      expect(events[1]).toMatchObject({ payload: { volts: -1 }, schemaVersion: 1 });
      expect(events[1]?.upcastError).toMatch(/negative volts: -1/);
      expect(events[2]).toMatchObject({ payload: { millivolts: 5 } });
    }
  });
});
