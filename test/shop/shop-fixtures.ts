import { sql } from 'kysely';
import type { Db } from '../../src/db/database.ts';
import { readStream } from '../../src/engine/outbox/read.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { silentLogger } from '../../src/logger.ts';
import { findOrder, type Order } from '../../src/shop/order.repository.ts';
import { addProduct } from '../../src/shop/product.service.ts';
import { shopConsumers } from '../../src/shop/shop.consumers.ts';
import { SHOP_EVENTS } from '../../src/shop/shop.events.ts';
import { FINAL_STATUSES } from '../../src/shop/shop.tables.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

/** A fresh database with the shop's consumers running on it. */
export interface RunningShop {
  readonly database: TestDatabase;
  readonly db: Db;
  readonly postbox: Postbox;
  stop(): Promise<void>;
}

/** Starts the engine with the shop consumers on a fresh database. */
export async function startShop(
  options: { paymentLimitCents?: number; poolSize?: number; concurrency?: number } = {},
): Promise<RunningShop> {
  const database = await createTestDatabase({ poolSize: options.poolSize ?? 30 });
  const postbox = await startPostbox({
    pool: database.pool,
    connectionString: database.url,
    consumers: shopConsumers({ paymentLimitCents: options.paymentLimitCents ?? 1_000_000 }),
    events: SHOP_EVENTS,
    concurrency: options.concurrency ?? 8,
    pollIntervalMs: 200,
    logger: silentLogger,
  });
  return {
    database,
    db: database.db,
    postbox,
    async stop() {
      await postbox.stop();
      await database.drop();
    },
  };
}

/** Polls `probe` until it returns something other than undefined. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until the order's status satisfies `done` (default: final). */
export async function waitForOrder(
  db: Db,
  id: string,
  done: (order: Order) => boolean = (order) => FINAL_STATUSES.has(order.status),
): Promise<Order> {
  return waitFor(async () => {
    const order = await findOrder(db, id);
    return order && done(order) ? order : undefined;
  }, `order ${id}`);
}

/** Waits until every order is final. */
export async function waitForAllFinal(db: Db, ids: readonly string[], timeoutMs = 90_000): Promise<Order[]> {
  return waitFor(
    async () => {
      const rows = await db
        .selectFrom('shop.orders')
        .selectAll()
        .where('id', 'in', [...ids])
        .execute();
      return rows.length === ids.length && rows.every((row) => FINAL_STATUSES.has(row.status))
        ? rows
        : undefined;
    },
    `${ids.length} orders to be final`,
    timeoutMs,
  );
}

/** Waits until every consumer has delivered everything (no lag, nothing retrying). */
export async function waitForQuiet(db: Db): Promise<void> {
  await waitFor(async () => {
    const { rows } = await sql<{ busy: string }>`
      select coalesce(sum(lag + retrying), 0)::text as busy from outbox.consumer_lag`.execute(db);
    return rows[0]?.busy === '0' ? true : undefined;
  }, 'consumers to catch up');
}

/** Event types of an order's stream, in version order. */
export async function orderEventTypes(db: Db, id: string): Promise<string[]> {
  return (await readStream(db, 'order', id)).map((row) => row.type);
}

/** Adds products through the service. */
export async function seedProducts(
  db: Db,
  products: ReadonlyArray<{ sku: string; name?: string; priceCents: number; stock: number }>,
): Promise<void> {
  for (const product of products) {
    await addProduct(db, { name: product.sku, ...product });
  }
}

/** Rows of a table (by SQL), for counting. */
export async function count(db: Db, table: string, where = 'true'): Promise<number> {
  const { rows } = await sql<{
    n: number;
  }>`select count(*)::int as n from ${sql.raw(table)} where ${sql.raw(where)}`.execute(db);
  return rows[0]?.n ?? 0;
}
