import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { pollPartitions } from '../../src/engine/sql/poll-partitions.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { soakOr } from '../helpers/soak.ts';
import { waitFor } from '../helpers/wait.ts';

// The cost of delivery must not grow with the size of the log. A log of NOISE events no consumer wants
// (1 M by default, 10 M under POSTBOX_SOAK=1), written with INSERT … SELECT from generate_series, sits between a rare
// consumer's checkpoints and its next event: the relay's poll, the lag view and a /metrics scrape must
// each stay within tens of ms, and the rare consumer — handler timeout 200 ms, engine statement timeout
// 2 s — must still deliver the one event appended after the noise.

const NOISE = soakOr(1_000_000, 10_000_000);
/** Noise events per transaction (a multiple of 1000, dividing NOISE). */
const CHUNK = 50_000;
/** Generous, for a busy shared machine; the real figures are printed. */
const BOUND_MS = 200;

let t: TestDatabase;
let postbox: Postbox;

beforeAll(
  async () => {
    t = await createTestDatabase({ poolSize: 8 });
    await createEffectsTable(t.db as never);
    postbox = await startPostbox({
      pool: t.pool,
      concurrency: 2,
      statementTimeoutMs: 2000,
      consumers: [effectsConsumer({ name: 'rare', partitions: 8, timeoutMs: 200 })],
    });
    // One rare event before the noise: its partition's checkpoint sits just before the noise, the other
    // partitions' at the start of the log.
    await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create('before', { n: 0 })]));
    await waitFor('the first rare event', async () => (await effects()) === 1, 30_000);

    const started = performance.now();
    const client = await t.pool.connect();
    try {
      await client.query('set statement_timeout = 0');
      // In transactions of CHUNK events: a write transaction holds back the readable horizon of every
      // database of the server while it runs (transaction ids are the cluster's), and test files of other
      // databases may share this server. One INSERT … SELECT per chunk, as outbox.append_events writes
      // them: 1000 events per stream, versions 1..1000 without gaps, log_xid = the transaction's id (new
      // streams), the streams' heads beside them.
      for (let from = 0; from < NOISE; from += CHUNK) {
        await client.query('begin');
        await client.query(
          `insert into outbox.streams (stream_type, stream_id, version, log_xid)
           select 'noise', 'n' || s, 1000, pg_current_xact_id()
           from generate_series($1::int / 1000, ($1::int + $2::int) / 1000 - 1) s`,
          [from, CHUNK],
        );
        await client.query(
          `insert into outbox.events (id, log_xid, stream_type, stream_id, stream_version, type, payload)
           select gen_random_uuid(), pg_current_xact_id(), 'noise', 'n' || (g / 1000), g % 1000 + 1,
                  'NoiseHappened', jsonb_build_object('g', g)
           from generate_series($1::int, $1::int + $2::int - 1) g`,
          [from, CHUNK],
        );
        await client.query('commit');
      }
      // What autovacuum does after a bulk load, done now rather than whenever it gets to it.
      await client.query('analyze outbox.events');
    } finally {
      client.release();
    }
    console.log(`large log: ${NOISE.toLocaleString('en')} noise events written in ${secs(started)} s`);
  },
  soakOr(900_000, 3_600_000),
);

afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

async function effects(): Promise<number> {
  const { rows } = await t.pool.query<{ n: number }>(
    `select count(*)::int as n from test_effects where consumer = 'rare'`,
  );
  return rows[0]?.n ?? 0;
}

function secs(from: number): string {
  return ((performance.now() - from) / 1000).toFixed(1);
}

/** Median of three timed runs, ms. */
async function timed(run: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    await run();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[1] as number;
}

describe(`a log of ${NOISE.toLocaleString('en')} events no consumer wants`, () => {
  it('costs the relay, the lag view and a scrape tens of ms, and the rare consumer still delivers', async () => {
    const client = await t.pool.connect();
    let pollMs: number;
    let lagMs: number;
    try {
      pollMs = await timed(() => pollPartitions(client));
      lagMs = await timed(() => client.query(`select * from outbox.consumer_lag where consumer = 'rare'`));
    } finally {
      client.release();
    }
    const metrics = createMetrics(t.db, { defaultMetrics: false, cacheMs: 0 });
    await metrics.render(); // the first scrape of a process starts counting appends at the log's end
    const scrapeMs = await timed(() => metrics.render());

    const appended = performance.now();
    await t.db
      .transaction()
      .execute((trx) => appendEvents(trx, [Ticked.create(`after-${randomUUID()}`, { n: 1 })]));
    await waitFor('the rare event after the noise', async () => (await effects()) === 2, 60_000);
    const deliveredMs = performance.now() - appended;

    console.log(
      `large log (${NOISE.toLocaleString('en')} events): poll ${pollMs.toFixed(1)} ms, ` +
        `lag view ${lagMs.toFixed(1)} ms, scrape ${scrapeMs.toFixed(1)} ms (medians of 3); ` +
        `rare event delivered ${deliveredMs.toFixed(0)} ms after its append`,
    );
    expect(pollMs).toBeLessThan(BOUND_MS);
    expect(lagMs).toBeLessThan(BOUND_MS);
    expect(scrapeMs).toBeLessThan(BOUND_MS);
    const { rows } = await t.pool.query<{ lag: string }>(
      `select coalesce(sum(lag), 0)::text as lag from outbox.consumer_lag where consumer = 'rare'`,
    );
    expect(rows[0]?.lag).toBe('0');
  }, 300_000);
});
