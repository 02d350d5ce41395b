/**
 * Does the engine's append speed depend on its own pool wrapper? The same work — a business row plus one
 * event per transaction — through: raw SQL (the limit); `appendEvents` on the application's own Kysely
 * over a plain `pg.Pool` (what an embedding app has); on the engine's `createDb` (statements marked
 * PREPARE run as named statements); and on a plain `pg` client inside BEGIN. Interleaved rounds on one fresh
 * database; prints the median tx/s per variant and its share of raw. A diagnostic, not part of `postbox bench`.
 *
 *   node bench/probes/append-pools.ts [seconds=3] [rounds=3] [--database-url URL]
 */
import { Kysely, PostgresDialect, sql } from 'kysely';
import type pg from 'pg';
import { createDb } from '../../src/engine/db/database.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { probeArgs } from '../lib/probe-args.ts';
import { startBenchServer } from '../lib/server.ts';
import { summarize } from '../lib/stats.ts';
import { makeOrder, OrderPlaced, rawOrderTransaction, runClosedLoop } from '../lib/workload.ts';

const {
  databaseUrl,
  values: [seconds, rounds],
} = probeArgs([3, 3]);

const server = await startBenchServer(databaseUrl);
const database = await server.createDatabase('append_pools');
const setup = database.pool(1);
// A loaded system: the relay is awake, so the wake-up trigger checks and does not NOTIFY.
await setup.query("select setval('outbox.relay_sleeping', 0)");
await setup.end();

async function pgClientTransaction(pool: pg.Pool): Promise<void> {
  const order = makeOrder();
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query('insert into bench.orders (id, customer_id, total_cents) values ($1, $2, $3)', [
      order.orderId,
      order.customerId,
      order.totalCents,
    ]);
    await appendEvents(client, [OrderPlaced.create(order.orderId, order.payload)]);
    await client.query('commit');
  } finally {
    client.release();
  }
}

async function kyselyTransaction<DB>(db: Kysely<DB>): Promise<void> {
  const order = makeOrder();
  await db.transaction().execute(async (trx) => {
    await sql`insert into bench.orders (id, customer_id, total_cents)
              values (${order.orderId}, ${order.customerId}, ${order.totalCents})`.execute(trx);
    await appendEvents(trx, [OrderPlaced.create(order.orderId, order.payload)]);
  });
}

const results: string[] = [];
for (const concurrency of [1, 4, 16]) {
  const pools = Array.from({ length: 4 }, () => database.pool(concurrency));
  const [rawPool, appPool, enginePool, clientPool] = pools as [pg.Pool, pg.Pool, pg.Pool, pg.Pool];
  const appDb = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: appPool }) });
  const engineDb = createDb(enginePool);
  const variants: Array<[string, () => Promise<void>]> = [
    ['raw insert + commit', () => rawOrderTransaction(rawPool)],
    ["app's Kysely on a plain pg.Pool", () => kyselyTransaction(appDb)],
    ["engine's createDb (named statements)", () => kyselyTransaction(engineDb)],
    ['pg client in BEGIN', () => pgClientTransaction(clientPool)],
  ];
  const rates = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  for (const [, run] of variants) await runClosedLoop(concurrency, 1, run); // warm-up
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse();
    for (const [name, run] of order)
      rates.get(name)?.push((await runClosedLoop(concurrency, seconds, run)).rate);
  }
  const raw = summarize(rates.get('raw insert + commit') ?? []).median;
  for (const [name] of variants) {
    const median = summarize(rates.get(name) ?? []).median;
    results.push(
      `c=${String(concurrency).padEnd(3)} ${name.padEnd(38)} ${Math.round(median).toString().padStart(6)} tx/s  ${((median / raw) * 100).toFixed(0).padStart(3)} % of raw`,
    );
  }
  await appDb.destroy().catch(() => undefined);
  for (const pool of pools) await pool.end().catch(() => undefined);
}
process.stdout.write(`${results.join('\n')}\n`);
await database.drop();
await server.stop();
