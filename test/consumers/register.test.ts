import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineConsumer } from '../../src/engine/consumers/consumer.ts';
import { registerConsumers } from '../../src/engine/consumers/register.ts';
import { ConfigError } from '../../src/engine/errors.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { READABLE_HORIZON } from '../../src/engine/outbox/horizon.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase, withAdmin } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

let t: TestDatabase;
let postbox: Postbox | undefined;
beforeAll(async () => {
  t = await createTestDatabase();
  await createEffectsTable(t.db as never);
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

describe('consumer registration', () => {
  it("a new consumer with startFrom 'now' skips history; one with 'beginning' gets all of it", async () => {
    const old = randomUUID();
    await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(old, { n: 1 })]));
    // 'now' starts at the gap-safe horizon, which an older open transaction anywhere on the server holds
    // back (on a shared server, another database's): until the horizon passes the old event, 'now' still
    // delivers it — never losing a later one. Wait for that, then 'now' must skip it.
    await waitFor('the old event below the readable horizon', async () => {
      const { rows } = await sql<{
        below: boolean;
      }>`select bool_and(log_xid < ${sql.raw(READABLE_HORIZON)}) as below
        from outbox.events where stream_id = ${old}`.execute(t.db);
      return rows[0]?.below === true;
    });
    postbox = await startPostbox({
      pool: t.pool,
      connectionString: t.url,
      pollIntervalMs: 100,
      consumers: [effectsConsumer({ name: 'late', startFrom: 'now' }), effectsConsumer({ name: 'early' })],
    });
    const fresh = randomUUID();
    await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(fresh, { n: 1 })]));
    const count = async (consumer: string, stream: string) =>
      Number(
        (
          await sql<{ n: string }>`select count(*)::text as n from test_effects
            where consumer = ${consumer} and stream_id = ${stream}`.execute(t.db)
        ).rows[0]?.n,
      );
    // The two streams may sit in different partitions, drained by different jobs: wait for all three
    // deliveries before checking that the fourth never happens.
    await waitFor(
      'fresh delivered to both, old to early',
      async () =>
        (await count('late', fresh)) === 1 &&
        (await count('early', fresh)) === 1 &&
        (await count('early', old)) === 1,
    );
    expect(await count('late', old)).toBe(0);
  });

  it('refuses to change the partition count of an existing consumer', async () => {
    await registerConsumers(t.db, [effectsConsumer({ name: 'fixed', partitions: 4 })]);
    await expect(
      registerConsumers(t.db, [effectsConsumer({ name: 'fixed', partitions: 8 })]),
    ).rejects.toBeInstanceOf(ConfigError);
    const { rows } = await sql<{ n: string }>`select count(*)::text as n from outbox.consumer_partitions
      where consumer = 'fixed'`.execute(t.db);
    expect(rows[0]?.n).toBe('4');
  });

  it('a start that fails closes the pool it opened itself (connectionString)', async () => {
    await registerConsumers(t.db, [effectsConsumer({ name: 'fixed-own', partitions: 4 })]);
    const name = new URL(t.url).pathname.slice(1);
    const since = await withAdmin(
      async (admin) => (await admin.query('select clock_timestamp() as at')).rows[0].at,
    );
    await expect(
      startPostbox({
        connectionString: t.url,
        consumers: [effectsConsumer({ name: 'fixed-own', partitions: 8 })],
      }),
    ).rejects.toBeInstanceOf(ConfigError);
    // Sessions opened since the failed start (this test's own pool is idle meanwhile): none may remain.
    const { rows } = await withAdmin((admin) =>
      admin.query<{ n: number }>(
        'select count(*)::int as n from pg_stat_activity where datname = $1 and backend_start >= $2',
        [name, since],
      ),
    );
    expect(rows[0]?.n).toBe(0);
  });

  it('rejects bad consumer definitions', () => {
    expect(() => effectsConsumer({ name: 'Bad Name' })).toThrow(/must match/);
    expect(() => effectsConsumer({ name: 'ok', partitions: 0 })).toThrow(/partitions/);
    // NaN slips past comparisons like `< 1`: each numeric option must refuse it.
    expect(() => effectsConsumer({ name: 'ok', partitions: Number.NaN })).toThrow(/partitions/);
    expect(() => effectsConsumer({ name: 'ok', batchSize: Number.NaN })).toThrow(/batchSize/);
    expect(() =>
      defineConsumer({ name: 'ok', on: [Ticked], timeoutMs: Number.NaN, handle: async () => {} }),
    ).toThrow(/timeoutMs/);
    expect(() => effectsConsumer({ name: 'ok', retry: { maxAttempts: Number.NaN } })).toThrow(/retry/);
    expect(() => effectsConsumer({ name: 'ok', retry: { initialDelayMs: Number.NaN } })).toThrow(/retry/);
    expect(() => effectsConsumer({ name: 'ok', retry: { jitter: Number.NaN } })).toThrow(/jitter/);
  });

  it('startPostbox refuses NaN options', async () => {
    for (const option of [
      'concurrency',
      'pollIntervalMs',
      'drainBudgetMs',
      'handoffConcurrency',
      'statementTimeoutMs',
    ]) {
      await expect(
        startPostbox({ pool: t.pool, consumers: [], [option]: Number.NaN }),
        option,
      ).rejects.toThrow(new RegExp(option));
    }
  });
});
