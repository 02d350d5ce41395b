import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineConsumer } from '../../src/engine/consumers/consumer.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { defineEvent } from '../../src/engine/outbox/event.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

let t: TestDatabase;
let postbox: Postbox;
let hang: 'js' | 'sql' | 'none' = 'js';
const attempts = new Map<string, number>();
const briskCalls = new Map<string, number>();
/** Called inside brisk's handler, before its write (a test's hook). */
let onBrisk: (() => Promise<void>) | undefined;

/** Delivered only to `brisk`, a consumer with a short handler timeout. */
const Nudged = defineEvent({ type: 'Nudged', streamType: 'nudge', schema: z.object({}) });

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 20 });
  await createEffectsTable(t.db as never);
  postbox = await startPostbox({
    pool: t.pool,
    connectionString: t.url,
    pollIntervalMs: 100,
    concurrency: 4,
    consumers: [
      defineConsumer({
        name: 'sleepy',
        on: [Ticked],
        partitions: 4,
        timeoutMs: 300,
        retry: { initialDelayMs: 100, maxDelayMs: 200, maxAttempts: 50, jitter: 0 },
        async handle(event, trx, context) {
          attempts.set(event.streamId, (attempts.get(event.streamId) ?? 0) + 1);
          // Write first, so a timed-out attempt that kept running would leave a visible effect.
          await sql`insert into test_effects (consumer, event_id, stream_id, stream_version, attempt)
                    values ('sleepy', ${event.id}, ${event.streamId}, ${event.streamVersion}, ${context.attempt})`.execute(
            trx,
          );
          if (event.payload.poison && hang === 'js') {
            await new Promise<void>((resolve) =>
              context.signal.addEventListener('abort', () => setTimeout(resolve, 200)),
            );
            // Still running after the timeout: this write must fail (the transaction is gone), never commit.
            await sql`insert into test_effects (consumer, event_id, stream_id, stream_version, attempt)
                      values ('zombie', ${event.id}, ${event.streamId}, 0, 0)`.execute(trx);
          }
          if (event.payload.poison && hang === 'sql') await sql`select pg_sleep(30)`.execute(trx);
        },
      }),
      defineConsumer({
        name: 'brisk',
        on: [Nudged],
        partitions: 1,
        timeoutMs: 1000,
        async handle(event, trx) {
          briskCalls.set(event.streamId, (briskCalls.get(event.streamId) ?? 0) + 1);
          await onBrisk?.();
          await sql`insert into test_effects (consumer, event_id, stream_id, stream_version, attempt)
                    values ('brisk', ${event.id}, ${event.streamId}, ${event.streamVersion}, 1)`.execute(trx);
        },
      }),
    ],
  });
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

const effects = async (streamId: string) =>
  (
    await sql<{ consumer: string; stream_version: number }>`
      select consumer, stream_version from test_effects where stream_id = ${streamId} order by seq`.execute(
      t.db,
    )
  ).rows;

describe('handler timeouts', () => {
  for (const mode of ['js', 'sql'] as const) {
    it(`a handler hanging in ${mode === 'js' ? 'JavaScript' : 'a query'} is cut at its timeout, retried, and blocks no other stream`, async () => {
      hang = mode;
      const stuck = randomUUID();
      const others = Array.from({ length: 8 }, () => randomUUID());
      await t.db
        .transaction()
        .execute((trx) => appendEvents(trx, [Ticked.create(stuck, { n: 1, poison: true })]));
      await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(stuck, { n: 2 })]));
      for (const stream of others) {
        await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(stream, { n: 1 })]));
      }
      // Every other stream is delivered although one partition keeps timing out.
      await waitFor('other streams', async () => {
        for (const stream of others) if ((await effects(stream)).length !== 1) return false;
        return true;
      });
      await waitFor('several timed-out attempts', async () => (attempts.get(stuck) ?? 0) >= 3, 20_000);
      // Nothing of the hung attempts committed: not its first write, not the write after the timeout.
      expect(await effects(stuck)).toEqual([]);
      const { rows } = await sql<{ last_error: string }>`
        select last_error from outbox.blocked_streams where consumer = 'sleepy' and stream_id = ${stuck}`.execute(
        t.db,
      );
      // JS hang: the timer cuts it. Query hang: the JS timer and statement_timeout (both 300 ms) race; either
      // way the query itself must have been cancelled, not left sleeping on a connection.
      expect(rows[0]?.last_error).toMatch(
        mode === 'js' ? /did not finish Ticked within 300 ms/ : /within 300 ms|statement timeout/,
      );
      if (mode === 'sql') {
        const { rows: sleeping } = await sql`select pid from pg_stat_activity
          where state = 'active' and query like '%pg_sleep(30)%' and pid <> pg_backend_pid()
            and now() - query_start > interval '1 second'`.execute(t.db);
        expect(sleeping).toEqual([]);
      }

      hang = 'none';
      const delivered = await waitFor('recovered', async () => {
        const rows = await effects(stuck);
        return rows.length === 2 && rows;
      });
      expect(delivered).toEqual([
        { consumer: 'sleepy', stream_version: 1 },
        { consumer: 'sleepy', stream_version: 2 },
      ]);
    });
  }
});

describe("the handler timeout is the handler's", () => {
  it("the engine's own queries in a delivery transaction are not cut at the handler timeout", async () => {
    const stream = randomUUID();
    // While the handler runs, an operator's transaction takes brisk's checkpoint row and keeps it for 2.5 s,
    // 2.5 times the handler timeout: the drain's checkpoint write waits for it. The handler itself is quick
    // and succeeds. (The lock is taken only once the event was read: an open write transaction before the
    // append would hold the event back from every reader.)
    const operator = new pg.Client({ connectionString: t.url });
    await operator.connect();
    try {
      let locked: Promise<void> | undefined;
      onBrisk = () => {
        onBrisk = undefined;
        locked = (async () => {
          await operator.query('begin');
          await operator.query(
            `select 1 from outbox.consumer_partitions where consumer = 'brisk' for update`,
          );
        })();
        return locked;
      };
      await t.db.transaction().execute((trx) => appendEvents(trx, [Nudged.create(stream, {})]));
      await waitFor('brisk called', async () => locked !== undefined);
      await locked;
      await new Promise((resolve) => setTimeout(resolve, 2500));
      await operator.query('commit');
    } finally {
      await operator.end();
    }
    await waitFor('brisk delivered', async () => (await effects(stream)).length > 0);
    // Time for a drain that failed its bookkeeping to run the handler again, if it would.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await effects(stream)).toEqual([{ consumer: 'brisk', stream_version: 1 }]);
    expect(briskCalls.get(stream)).toBe(1);
  });
});
