/**
 * Does the shop's payment → inventory → shipping chain keep pace with placeOrder? In process, without the
 * HTTP and subscription hops of the bench's shop scenario (whose short quick-mode windows mostly measure
 * latency), on one fresh database:
 *
 * 1. placed/s: `placeOrder` flat out at c = 32 for `seconds`, the consumers not running (a backlog builds);
 * 2. finished/s: the shop's consumers start (their own settings, engine concurrency 8, pool 20) and drain
 *    that backlog: orders made final per second, flat out;
 * 3. at half the placed rate, paced for `seconds` with the chain running: commit → SHIPPED on the probe's
 *    clock (placeOrder returned → a 10 ms poll of `shop.orders` sees SHIPPED; so up to 10 ms late).
 *
 * Prints one line per round and the medians. A diagnostic, not part of `postbox bench`.
 *
 *   node bench/probes/shop-chain.ts [seconds=5] [rounds=2] [--database-url URL]
 */
import type { Db } from '../../src/db/database.ts';
import { createDb } from '../../src/engine/db/database.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { silentLogger } from '../../src/logger.ts';
import { placeOrder } from '../../src/shop/order.service.ts';
import { addProduct } from '../../src/shop/product.service.ts';
import { shopConsumers } from '../../src/shop/shop.consumers.ts';
import { SHOP_EVENTS } from '../../src/shop/shop.events.ts';
import { probeArgs } from '../lib/probe-args.ts';
import { startBenchServer } from '../lib/server.ts';
import { percentiles } from '../lib/stats.ts';
import { runClosedLoop, runOpenLoop } from '../lib/workload.ts';

const {
  databaseUrl,
  values: [seconds, rounds],
} = probeArgs([5, 2]);
const CONCURRENCY = 32;
const PRODUCTS = 20;

const server = await startBenchServer(databaseUrl);
const lines: string[] = [];
try {
  for (let round = 1; round <= rounds; round++) {
    const database = await server.createDatabase(`shop_chain_${round}`);
    const pool = database.pool(CONCURRENCY + 4);
    const db: Db = createDb(pool);
    const enginePool = database.pool(20);
    let postbox: Postbox | undefined;
    try {
      for (let index = 0; index < PRODUCTS; index++) {
        await addProduct(db, {
          sku: `P-${index}`,
          name: `Product ${index}`,
          priceCents: 500 + index * 100,
          stock: 10_000_000,
        });
      }
      let n = 0;
      const place = async () => {
        const i = ++n;
        const count = 1 + (i % 3);
        const { order } = await placeOrder(db, {
          customerId: `customer-${i % 1000}`,
          idempotencyKey: `probe-${i}`,
          lines: Array.from({ length: count }, (_, k) => ({
            sku: `P-${(i * 7 + k * 3) % PRODUCTS}`,
            quantity: 1 + ((i + k) % 3),
          })),
        });
        return order.id;
      };
      const placed = await runClosedLoop(CONCURRENCY, seconds, async () => {
        await place();
      });
      const placedRate = placed.completed / placed.seconds;

      const started = performance.now();
      postbox = await startPostbox({
        pool: enginePool,
        connectionString: database.url,
        consumers: shopConsumers({ paymentLimitCents: 1_000_000 }),
        events: SHOP_EVENTS,
        concurrency: 8,
        logger: silentLogger,
      });
      const open = async () =>
        Number(
          (
            await pool.query<{ n: string }>(
              "select count(*) as n from shop.orders where status in ('PLACED', 'PAID', 'RESERVED')",
            )
          ).rows[0]?.n,
        );
      while ((await open()) > 0) await new Promise((resolve) => setTimeout(resolve, 20));
      const finishedRate = placed.completed / ((performance.now() - started) / 1000);

      // Half the placed rate, with the chain running.
      const half = Math.max(1, Math.round(placedRate / 2));
      const pending = new Map<string, number>();
      const samples: number[] = [];
      let polling = true;
      const poller = (async () => {
        while (polling || pending.size > 0) {
          if (pending.size > 0) {
            const { rows } = await pool.query<{ id: string }>(
              "select id::text from shop.orders where id = any($1::uuid[]) and status = 'SHIPPED'",
              [[...pending.keys()]],
            );
            const now = performance.now();
            for (const { id } of rows) {
              samples.push(now - (pending.get(id) ?? now));
              pending.delete(id);
            }
          }
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      })();
      const paced = await runOpenLoop({
        rate: half,
        seconds,
        maxInFlight: CONCURRENCY,
        transaction: async () => {
          const id = await place();
          pending.set(id, performance.now());
        },
      });
      polling = false;
      await poller;
      const stats = percentiles(samples);
      const line =
        `round ${round}: placed ${placedRate.toFixed(0)}/s (c=${CONCURRENCY}, ${placed.completed} orders), ` +
        `chain finished ${finishedRate.toFixed(0)}/s (${(finishedRate / placedRate).toFixed(2)}×); ` +
        `at ${half}/s (${paced.completed} placed, ${paced.behind} behind): commit → SHIPPED ` +
        `p50 ${stats.p50.toFixed(0)} ms, p99 ${stats.p99.toFixed(0)} ms`;
      console.log(line);
      lines.push(line);
    } finally {
      await postbox?.stop();
      await database.drop();
    }
  }
} finally {
  await server.stop();
}
