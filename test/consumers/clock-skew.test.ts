import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

// The application's clock is an hour ahead of the database's (a host with a drifting clock). Retry times
// are the database's: a retry 100 ms away must not wait an hour.

const SKEW_MS = 3_600_000;

let t: TestDatabase;
let postbox: Postbox;
let poisonFails = true;

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 12 });
  await createEffectsTable(t.db as never);
  postbox = await startPostbox({
    pool: t.pool,
    pollIntervalMs: 100,
    concurrency: 2,
    consumers: [
      effectsConsumer({
        name: 'skewed',
        partitions: 1,
        failPoison: () => poisonFails,
        retry: { maxAttempts: 10, initialDelayMs: 100, maxDelayMs: 200 },
      }),
    ],
  });
  vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + SKEW_MS, shouldAdvanceTime: true });
});
afterAll(async () => {
  vi.useRealTimers();
  await postbox?.stop();
  await t?.drop();
});

describe('retry times with the application clock ahead of the database', () => {
  it('a retry due in 100 ms by the database clock runs within seconds', async () => {
    const stream = randomUUID();
    await t.db
      .transaction()
      .execute((trx) => appendEvents(trx, [Ticked.create(stream, { n: 1, poison: true })]));
    await waitFor('first attempt failed', async () => {
      const { rows } = await sql`select 1 from outbox.blocked_streams where consumer = 'skewed'`.execute(
        t.db,
      );
      return rows.length > 0;
    });
    // Due a moment from now on the database's clock, not an hour from now.
    const { rows } = await sql<{
      ahead_s: number;
    }>`select extract(epoch from next_attempt_at - now())::float8 as ahead_s
      from outbox.blocked_streams where consumer = 'skewed'`.execute(t.db);
    expect(rows[0]?.ahead_s).toBeLessThan(60);
    poisonFails = false;
    const delivered = await waitFor(
      'retried and delivered',
      async () => {
        const { rows } = await sql<{ attempt: number }>`select attempt from test_effects
          where consumer = 'skewed' and stream_id = ${stream}`.execute(t.db);
        return rows.length > 0 && rows;
      },
      15_000,
    );
    expect(delivered[0]?.attempt).toBeGreaterThan(1);
  });
});
