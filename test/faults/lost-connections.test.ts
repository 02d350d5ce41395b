import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineConsumer } from '../../src/engine/consumers/consumer.ts';
import type { DeliveryOutcome } from '../../src/engine/consumers/delivery-outcome.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

// A pool of 4 shared by the API (the writers below) and the engine's drains: one leaked slot is a quarter
// of it, and four leaks would hang both.
const POOL_SIZE = 4;
const TERMINATIONS = 5;

let t: TestDatabase;
let postbox: Postbox | undefined;

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: POOL_SIZE });
  await createEffectsTable(t.db as never);
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

/** A connection of the test's own, outside the pool under test. */
async function withOwnClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: t.url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const checkedOut = () => t.pool.totalCount - t.pool.idleCount;

describe('lost connections', () => {
  it('backends terminated mid-delivery five times: no pool slot leaks, the API answers, stop() resolves', async () => {
    postbox = await startPostbox({
      pool: t.pool,
      pollIntervalMs: 100,
      concurrency: 2,
      handoffConcurrency: 1,
      consumers: [
        effectsConsumer({
          name: 'lossy',
          partitions: 2,
          batchSize: 5,
          // Holds the delivery transaction open (idle in transaction) after the handler's insert.
          after: () => new Promise((resolve) => setTimeout(resolve, 40)),
        }),
      ],
    });
    let writing = true;
    let appended = 0;
    const writer = (async () => {
      let n = 0;
      while (writing) {
        try {
          await t.db
            .transaction()
            .execute((trx) => appendEvents(trx, [Ticked.create(`lc${n % 6}`, { n: n++ })]));
          appended++;
        } catch {
          // terminated with the others; the next append gets a fresh connection
        }
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    })();

    for (let round = 0; round < TERMINATIONS; round++) {
      // Wait until a drain is inside its transaction (the handler's sleep), then cut every engine backend.
      const killed = await withOwnClient((client) =>
        waitFor(`a delivery transaction in flight (round ${round + 1})`, async () => {
          // Only once a drain sits in its handler (its last statement is the handler's insert): then the
          // drain's backend, the relay's and graphile-worker's go together.
          const { rows } = await client.query<{ drains: number }>(
            `with victims as (
               select pid, state like 'idle in transaction%' and query like '%test_effects%' as drain
               from pg_stat_activity
               where datname = current_database() and pid <> pg_backend_pid()
                 and exists (select 1 from pg_stat_activity a
                             where a.datname = current_database() and a.state like 'idle in transaction%'
                               and a.query like '%test_effects%'))
             select count(*) filter (where drain)::int as drains, bool_and(pg_terminate_backend(pid)) as done
             from victims`,
          );
          return (rows[0]?.drains ?? 0) > 0 && rows[0]?.drains;
        }),
      );
      expect(killed).toBeGreaterThan(0);
      const before = appended;
      await waitFor('appends continue', async () => appended > before + 5, 30_000);
    }
    writing = false;
    await writer;

    // Everything appended is delivered once the connections are back.
    const { rows: logged } = await sql<{ n: number }>`
      select count(*)::int as n from outbox.events where type = 'Ticked'`.execute(t.db);
    const total = logged[0]?.n ?? 0;
    await waitFor(
      'every event delivered',
      async () => {
        const { rows } = await sql<{ n: number; d: number }>`
          select count(*)::int as n, count(distinct event_id)::int as d from test_effects
          where consumer = 'lossy'`.execute(t.db);
        return rows[0]?.d === total && rows[0];
      },
      60_000,
    );
    // Idle again: no slot of the shared pool stays checked out by a drain that lost its connection.
    await waitFor('pool idle', async () => checkedOut() === 0 && t.pool.waitingCount === 0, 30_000);
    expect(checkedOut()).toBe(0);
    // The API still gets a connection from the shared pool (with a leak it would wait forever).
    const answered = await Promise.all(
      Array.from({ length: POOL_SIZE }, () => sql<{ ok: number }>`select 1 as ok`.execute(t.db)),
    );
    expect(answered.map((result) => result.rows[0]?.ok)).toEqual(Array(POOL_SIZE).fill(1));
    const { rows: dupes } = await sql<{ n: number }>`
      select count(*)::int as n from (select event_id from test_effects where consumer = 'lossy'
                                       group by event_id having count(*) > 1) d`.execute(t.db);
    expect(dupes[0]?.n).toBe(0);

    await postbox.stop();
    postbox = undefined;
    expect(checkedOut()).toBe(0);
  }, 120_000);
});

describe('a connection lost inside a handler', () => {
  it('is not counted as a failed attempt of the event: it is delivered again as attempt 1, with no retry recorded', async () => {
    const stream = randomUUID();
    let calls = 0;
    postbox = await startPostbox({
      pool: t.pool,
      pollIntervalMs: 100,
      concurrency: 2,
      consumers: [
        defineConsumer({
          name: 'cut',
          on: [Ticked],
          partitions: 1,
          retry: { initialDelayMs: 50, maxDelayMs: 100, jitter: 0 },
          async handle(event, trx, context) {
            await sql`insert into test_effects (consumer, event_id, stream_id, stream_version, attempt)
                      values ('cut', ${event.id}, ${event.streamId}, ${event.streamVersion}, ${context.attempt})`.execute(
              trx,
            );
            // The first call loses its connection (as in a failover) in its own query.
            if (event.streamId === stream && calls++ === 0) {
              await sql`select pg_terminate_backend(pg_backend_pid())`.execute(trx);
            }
          },
        }),
      ],
    });
    const outcomes: DeliveryOutcome[] = [];
    postbox.events.on('delivery', (outcome) => {
      if (outcome.consumer === 'cut') outcomes.push(outcome);
    });
    await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(stream, { n: 1 })]));
    const delivered = await waitFor(
      'delivered after the lost connection',
      async () => {
        const { rows } = await sql<{ attempt: number }>`
          select attempt from test_effects where consumer = 'cut' and stream_id = ${stream}`.execute(t.db);
        return rows.length > 0 && rows;
      },
      30_000,
    );
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(delivered).toEqual([{ attempt: 1 }]);
    expect(outcomes.filter((outcome) => !outcome.ok)).toEqual([]);
    const { rows: retries } = await sql`select 1 from outbox.blocked_streams where consumer = 'cut'`.execute(
      t.db,
    );
    expect(retries).toEqual([]);
    await postbox.stop();
    postbox = undefined;
  }, 60_000);
});
