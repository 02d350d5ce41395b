import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

let t: TestDatabase;
let postbox: Postbox;
const polls: number[] = [];

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 12 });
  await createEffectsTable(t.db as never);
  postbox = await startPostbox({
    pool: t.pool,
    pollIntervalMs: 100,
    concurrency: 2,
    consumers: [effectsConsumer({ name: 'sleeper', partitions: 2 })],
  });
  postbox.events.on('relay', (activity) => {
    if (activity.kind === 'poll') polls.push(Date.now());
  });
  await waitFor('leading', async () => postbox.isLeader());
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

describe('the relay going to sleep while an older write transaction runs', () => {
  it('keeps its periodic poll (the safety net) while it waits for that transaction', async () => {
    // Writers keep the relay awake; a write transaction opens (while the relay is awake) and stays open for
    // 1.5 s, and the writers stop: their last events are behind it, so the relay goes to sleep while it runs.
    let writing = true;
    const writers = Promise.all(
      [1, 2, 3].map(async (w) => {
        let n = 0;
        while (writing) {
          await t.db
            .transaction()
            .execute((trx) => appendEvents(trx, [Ticked.create(`w${w}-${n % 7}`, { n: n++ })]));
        }
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const old = new pg.Client({ connectionString: t.url });
    await old.connect();
    try {
      for (let tries = 0; ; tries++) {
        await old.query('begin');
        await old.query('select pg_current_xact_id()');
        const { rows } = await old.query<{ sleeping: string }>(
          'select last_value::text as sleeping from outbox.relay_sleeping',
        );
        if (rows[0]?.sleeping === '0' || tries > 100) break;
        await old.query('rollback');
      }
      writing = false;
      await writers;
      const from = Date.now() + 300;
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const during = polls.filter((at) => at >= from && at <= Date.now()).length;
      // 1.2 s at a 100 ms poll interval: about 12 polls; none while the relay spun on the old transaction.
      expect(during).toBeGreaterThanOrEqual(4);
      await old.query('commit');
    } finally {
      await old.end();
    }
    // Everything is delivered once the old transaction ended.
    await waitFor('caught up', async () => {
      const { rows } = await t.pool.query<{ lag: string }>(
        `select coalesce(sum(lag), 0)::text as lag from outbox.consumer_lag where consumer = 'sleeper'`,
      );
      return rows[0]?.lag === '0';
    });
  });
});

describe('a writer whose snapshot is older than the relay going to sleep', () => {
  let slow: Postbox;
  let s: TestDatabase;

  beforeAll(async () => {
    s = await createTestDatabase({ poolSize: 12 });
    await createEffectsTable(s.db as never);
    // The poll is the safety net: a minute here, so only a wake-up can deliver within the bound below.
    slow = await startPostbox({
      pool: s.pool,
      pollIntervalMs: 60_000,
      concurrency: 2,
      consumers: [effectsConsumer({ name: 'woken', partitions: 1 })],
    });
    await waitFor('leading', async () => slow.isLeader());
  });
  afterAll(async () => {
    await slow?.stop();
    await s?.drop();
  });

  it('a REPEATABLE READ writer that took its snapshot while the relay was awake still wakes it', async () => {
    for (let round = 0; round < 4; round++) {
      // Writers keep the relay awake while the writer under test takes its snapshot; then they stop and the
      // relay goes to sleep before that writer appends.
      let writing = true;
      const writers = Promise.all(
        [1, 2, 3].map(async (w) => {
          let n = 0;
          while (writing) {
            await s.db
              .transaction()
              .execute((trx) => appendEvents(trx, [Ticked.create(`k${w}-${n % 5}`, { n: n++ })]));
          }
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      const late = new pg.Client({ connectionString: s.url });
      await late.connect();
      const stream = `late-${round}`;
      try {
        await late.query('begin isolation level repeatable read');
        await late.query('select count(*) from outbox.events');
        writing = false;
        await writers;
        await new Promise((resolve) => setTimeout(resolve, 300));
        await appendEvents(late, [Ticked.create(stream, { n: round })]);
        await late.query('commit');
      } finally {
        await late.end();
      }
      // A tenth of the poll interval: the wake-up reached the relay (a liveness bound, not a speed one).
      await waitFor(
        `round ${round}: delivered without waiting for the poll`,
        async () => {
          const { rows } = await s.pool.query(
            `select 1 from test_effects where consumer = 'woken' and stream_id = $1`,
            [stream],
          );
          return rows.length > 0;
        },
        6_000,
      );
    }
  }, 60_000);
});
