import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

// The application sizes its pool for the engine's `concurrency`: the relay's direct hand-off must not add
// drains (each holds a connection for its transaction) on top of the queued ones.

const CONCURRENCY = 2;

let t: TestDatabase;
let postbox: Postbox;
let inFlight = 0;
let maxInFlight = 0;
let handled = 0;

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 12 });
  await createEffectsTable(t.db as never);
  postbox = await startPostbox({
    pool: t.pool,
    pollIntervalMs: 100,
    concurrency: CONCURRENCY,
    consumers: [
      effectsConsumer({
        name: 'bounded',
        partitions: 8,
        batchSize: 5,
        before: async () => {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await new Promise((resolve) => setTimeout(resolve, 20));
        },
        after: () => {
          inFlight--;
          handled++;
        },
      }),
    ],
  });
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

describe('drains per process', () => {
  it(`never more than concurrency (${CONCURRENCY}) delivery transactions at once, hand-offs included`, async () => {
    for (let round = 0; round < 20; round++) {
      await t.db.transaction().execute((trx) =>
        appendEvents(
          trx,
          Array.from({ length: 8 }, (_, i) => Ticked.create(`b${i}-${round % 3}`, { n: i })),
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await waitFor('all handled', async () => handled >= 160, 60_000);
    expect(maxInFlight).toBeLessThanOrEqual(CONCURRENCY);
  }, 90_000);
});
