/**
 * Append throughput of `concurrency` writers without and with delivery running (the relay and a no-op
 * consumer in this process, as in the bench's NOTIFY scenario), interleaved, with what delivery added: the
 * round trips this process sent per statement kind, and where the server's sessions waited. For tuning
 * the relay and the drains (issue 18 item 3):
 *   node bench/probes/delivery-under-load.ts [seconds=5] [rounds=3] [concurrency=16] [--database-url URL]
 */
import pg from 'pg';
import { createDb } from '../../src/engine/db/database.ts';
import { startNoopConsumer } from '../lib/engine.ts';
import { probeArgs } from '../lib/probe-args.ts';
import { startBenchServer } from '../lib/server.ts';
import { appendOrderTransaction, runClosedLoop } from '../lib/workload.ts';
import { openConnections } from '../scenarios/append.scenario.ts';

const {
  databaseUrl,
  values: [seconds, rounds, concurrency],
} = probeArgs([5, 3, 16]);

// Every statement this process sends, by its first words: a probe may patch the driver it measures.
const sent = new Map<string, number>();
const query = pg.Client.prototype.query;
(pg.Client.prototype as unknown as { query: unknown }).query = function (this: pg.Client, ...a: unknown[]) {
  const first = a[0] as string | { text?: string } | undefined;
  const text = typeof first === 'string' ? first : first?.text;
  if (typeof text === 'string') {
    const kind = text.replace(/\s+/g, ' ').replace('/*postbox:prepare*/', '').trim().slice(0, 48);
    sent.set(kind, (sent.get(kind) ?? 0) + 1);
  }
  return (query as (...x: unknown[]) => unknown).apply(this, a);
};

const server = await startBenchServer(databaseUrl);
const database = await server.createDatabase('delivery_load');
const pool = database.pool(concurrency, { 'postbox.notify': 'never' });
await openConnections(pool, concurrency);
const db = createDb(pool);
const stats = database.pool(1);

/** Samples pg_stat_activity every 20 ms while `work` runs: share of non-idle sessions per wait. */
async function sampleWaits<T>(work: () => Promise<T>): Promise<[T, string]> {
  const waits = new Map<string, number>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const { rows } = await stats.query<{ w: string; n: number }>(
        `select coalesce(wait_event_type || ':' || wait_event, 'CPU') || ' (' || state || ')' as w,
                count(*)::int as n
         from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle'
         group by 1`,
      );
      for (const row of rows) waits.set(row.w, (waits.get(row.w) ?? 0) + row.n);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  try {
    return [await work(), summary(waits, 5)];
  } finally {
    sampling = false;
    await sampler;
  }
}

function summary(counts: Map<string, number>, top: number, per?: number): string {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, n]) => (per ? `${(n / per).toFixed(2)} × ${k}` : `${k} ${((n / total) * 100).toFixed(0)} %`))
    .join('\n  ');
}

let round = 0;
async function measure(withDelivery: boolean) {
  let delivered = 0;
  const postbox = withDelivery
    ? await startNoopConsumer(database, `probe-${++round}`, { onHandled: () => delivered++ })
    : undefined;
  sent.clear();
  const [result, waits] = await sampleWaits(() =>
    runClosedLoop(concurrency, seconds, () => appendOrderTransaction(db)),
  );
  const statements = summary(sent, 8, result.completed);
  await postbox?.stop();
  return { rate: result.rate, completed: result.completed, delivered, waits, statements };
}

for (let r = 0; r < rounds; r++) {
  const without = await measure(false);
  const withDelivery = await measure(true);
  process.stdout.write(
    `round ${r + 1}: without delivery ${without.rate.toFixed(0)}/s, with ${withDelivery.rate.toFixed(0)}/s ` +
      `(${((withDelivery.rate / without.rate) * 100).toFixed(0)} %), delivered ${withDelivery.delivered} of ${withDelivery.completed}\n` +
      ` waits without:\n  ${without.waits}\n waits with:\n  ${withDelivery.waits}\n` +
      ` statements sent per appended event, with delivery:\n  ${withDelivery.statements}\n`,
  );
}
await pool.end();
await stats.end();
await database.drop();
await server.stop();
