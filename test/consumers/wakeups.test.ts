import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * The poll is the safety net behind every wake-up path; here it is set to two minutes, so only the
 * wake-up paths can deliver within the test: the relay's NOTIFY after sleeping, its paced scans while
 * awake, the hand-off to a drain that is already running (its "look again" flag), and re-added jobs for a
 * partition whose drain is running. An event stranded by any of them would wait for the poll and time the
 * test out. (The bounds below are a tenth of the poll interval: a liveness check, not a speed assertion.)
 */
const POLL_MS = 120_000;
const BOUND_MS = 12_000;

describe.each([
  { label: 'direct hand-off', handoffConcurrency: undefined },
  { label: 'job queue only', handoffConcurrency: 0 },
])('wake-ups without the poll ($label)', ({ handoffConcurrency }) => {
  let t: TestDatabase;
  let postbox: Postbox;
  /** Handler starts by payload n (the targeted test waits for one to be in flight). */
  const handling = new Set<number>();

  beforeAll(async () => {
    t = await createTestDatabase({ poolSize: 20 });
    await createEffectsTable(t.db as never);
    postbox = await startPostbox({
      pool: t.pool,
      connectionString: t.url,
      pollIntervalMs: POLL_MS,
      concurrency: 4,
      ...(handoffConcurrency === undefined ? {} : { handoffConcurrency }),
      consumers: [
        // One partition and slow handlers: drains are nearly always running when news arrives.
        effectsConsumer({
          name: 'slow',
          partitions: 1,
          batchSize: 5,
          before: async ({ n }) => {
            handling.add(n);
            await sleep(n >= 1000 ? 150 : 10);
          },
        }),
      ],
    });
  });
  afterAll(async () => {
    await postbox?.stop();
    await t?.drop();
  });

  const delivered = async (streams: readonly string[]): Promise<number> => {
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from test_effects where consumer = 'slow' and stream_id = any(${streams})`.execute(
      t.db,
    );
    return rows[0]?.n ?? 0;
  };

  it('delivers events that arrive while their partition is draining, without waiting for the poll', async () => {
    const streams: string[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let i = 0; i < 25; i++) {
          const stream = randomUUID();
          streams.push(stream);
          await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(stream, { n: i })]));
          await sleep(Math.random() * 8);
        }
      }),
    );
    const started = Date.now();
    await waitFor('150 deliveries', async () => (await delivered(streams)) === 150, BOUND_MS);
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    expect(await delivered(streams)).toBe(150);
  });

  it('delivers an event committed while the drain of its partition is handling the previous one', async () => {
    for (let round = 0; round < 3; round++) {
      const first = 1000 + round * 2;
      const [a, b] = [randomUUID(), randomUUID()];
      await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(a, { n: first })]));
      // The drain has read its batch (just this event) and sits in the handler for 150 ms.
      await waitFor(`handler of ${first} running`, async () => handling.has(first), BOUND_MS);
      await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(b, { n: first + 1 })]));
      await waitFor(
        `event committed mid-drain (round ${round})`,
        async () => (await delivered([b])) === 1,
        BOUND_MS,
      );
    }
  });

  it('wakes from sleep for a lone event after an idle spell', async () => {
    for (let round = 0; round < 3; round++) {
      await sleep(300); // the relay marks itself asleep and waits on LISTEN
      const stream = randomUUID();
      await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(stream, { n: round })]));
      await waitFor(`lone event ${round}`, async () => (await delivered([stream])) === 1, BOUND_MS);
    }
  });
});
