import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listDeadLetters } from '../../src/engine/consumers/admin.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { silentLogger } from '../../src/logger.ts';
import { placeOrder } from '../../src/shop/order.service.ts';
import { shopConsumers } from '../../src/shop/shop.consumers.ts';
import { SHOP_EVENTS } from '../../src/shop/shop.events.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { orderEventTypes, seedProducts, waitForAllFinal, waitForQuiet } from './shop-fixtures.ts';

// Orders committed before the handlers start reach each handler in one delivery batch: the inventory
// handler must serve them one after the other against the stock the batch's earlier orders left.

/** More orders than the consumers' 8 partitions: at least two share one, and so a delivery batch. */
const ORDERS = 12;

let database: TestDatabase;
let postbox: Postbox | undefined;

beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 30 });
});
afterAll(async () => {
  await postbox?.stop();
  await database?.drop();
});

describe('the shop handlers in batches', () => {
  it('a batch of orders for scarce stock: served one after the other, the rest rejected and refunded, stock never below zero', async () => {
    const db = database.db;
    await seedProducts(db, [
      { sku: 'B-SCARCE', priceCents: 1_000, stock: 5 },
      { sku: 'B-PLENTY', priceCents: 500, stock: 1_000 },
    ]);
    const ids: string[] = [];
    for (let n = 0; n < ORDERS; n++) {
      const lines = [{ sku: 'B-SCARCE', quantity: 2 }];
      if (n % 2 === 0) lines.push({ sku: 'B-PLENTY', quantity: 1 });
      const { order } = await placeOrder(db, { customerId: `c${n}`, idempotencyKey: `batch-${n}`, lines });
      ids.push(order.id);
    }
    postbox = await startPostbox({
      pool: database.pool,
      connectionString: database.url,
      consumers: shopConsumers({ paymentLimitCents: 1_000_000 }),
      events: SHOP_EVENTS,
      // At 2 (and 30 s), nothing was delivered at all, on main's code too: see the report of issue 18.
      concurrency: 8,
      pollIntervalMs: 200,
      logger: silentLogger,
    });
    const orders = await waitForAllFinal(db, ids, 60_000);
    await waitForQuiet(db);

    const statuses = ids.map((id) => orders.find((order) => order.id === id)?.status);
    // 5 in stock, 2 per order: two orders are served; 1 is left, which serves none of the others.
    expect(statuses.filter((status) => status === 'SHIPPED')).toHaveLength(2);
    expect(statuses.filter((status) => status === 'REJECTED')).toHaveLength(ORDERS - 2);
    const stock = await db.selectFrom('shop.products').select(['sku', 'stock']).orderBy('sku').execute();
    expect(stock).toEqual([
      {
        sku: 'B-PLENTY',
        stock: 1_000 - ids.filter((_, n) => n % 2 === 0 && statuses[n] === 'SHIPPED').length,
      },
      { sku: 'B-SCARCE', stock: 1 },
    ]);
    for (const [n, id] of ids.entries()) {
      expect(await orderEventTypes(db, id)).toEqual(
        statuses[n] === 'SHIPPED'
          ? ['OrderPlaced', 'PaymentSucceeded', 'InventoryReserved', 'OrderShipped']
          : ['OrderPlaced', 'PaymentSucceeded', 'OrderRejected', 'PaymentRefunded'],
      );
    }
    const { rows: payments } = await sql<{ status: string; n: number }>`
      select status, count(*)::int as n from shop.payments group by status order by status`.execute(db);
    expect(payments).toEqual([
      { status: 'approved', n: 2 },
      { status: 'refunded', n: ORDERS - 2 },
    ]);
    // One notification per customer-facing event (3 for a shipped order, 4 for a rejected one), none twice.
    const { rows: notes } = await sql<{ n: number; events: number }>`
      select count(*)::int as n, count(distinct event_id)::int as events from shop.notifications`.execute(db);
    const expected = 2 * 3 + (ORDERS - 2) * 4;
    expect(notes[0]).toEqual({ n: expected, events: expected });
    // The inventory decisions of orders sharing a partition committed in one transaction (a batch), not one
    // each: the payment handler committed each partition's PaymentSucceeded events together.
    const { rows: batches } = await sql<{ transactions: number }>`
      select count(distinct transaction_id)::int as transactions from outbox.events
       where type in ('InventoryReserved', 'OrderRejected')`.execute(db);
    expect(batches[0]?.transactions).toBeLessThan(ORDERS);
    expect(await listDeadLetters(db)).toHaveLength(0);
  }, 90_000);
});
