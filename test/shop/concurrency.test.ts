import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listDeadLetters } from '../../src/engine/consumers/admin.ts';
import { IllegalStateError } from '../../src/engine/errors.ts';
import { readLogAfter } from '../../src/engine/outbox/read.ts';
import { cancelOrder, placeOrder } from '../../src/shop/order.service.ts';
import { type RunningShop, seedProducts, startShop, waitForAllFinal, waitForQuiet } from './shop-fixtures.ts';

let shop: RunningShop;

const CATALOGUE = [
  { sku: 'C-KEYB', priceCents: 8_900, stock: 10_000 },
  { sku: 'C-MOUSE', priceCents: 2_500, stock: 10_000 },
  { sku: 'C-LAPTOP', priceCents: 400_000, stock: 10_000 },
  // Scarce: some orders get rejected after payment, and it runs out (StockDepleted) on the way.
  { sku: 'C-GPU', priceCents: 120_000, stock: 25 },
  { sku: 'C-CABLE', priceCents: 900, stock: 60 },
];

/** A reproducible pseudo-random sequence (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function randomLines(rand: () => number): Array<{ sku: string; quantity: number }> {
  const skus = CATALOGUE.map((product) => product.sku).filter(() => rand() < 0.4);
  const chosen = skus.length > 0 ? skus : ['C-KEYB'];
  return chosen.map((sku) => ({ sku, quantity: 1 + Math.floor(rand() * 3) }));
}

/** Valid event sequences of an order stream, by final status. */
const VALID_PATHS: Record<string, string[][]> = {
  SHIPPED: [['OrderPlaced', 'PaymentSucceeded', 'InventoryReserved', 'OrderShipped']],
  PAYMENT_FAILED: [['OrderPlaced', 'PaymentFailed']],
  REJECTED: [['OrderPlaced', 'PaymentSucceeded', 'OrderRejected', 'PaymentRefunded']],
  CANCELLED: [
    ['OrderPlaced', 'OrderCancelled'],
    ['OrderPlaced', 'PaymentSucceeded', 'OrderCancelled', 'PaymentRefunded'],
    ['OrderPlaced', 'PaymentSucceeded', 'InventoryReserved', 'OrderCancelled', 'PaymentRefunded'],
  ],
};

async function checkInvariants(
  orderIds: readonly string[],
  initialStock: Map<string, number>,
): Promise<void> {
  const orders = await shop.db
    .selectFrom('shop.orders')
    .selectAll()
    .where('id', 'in', [...orderIds])
    .execute();

  // Each order's stream: versions 1..n without gaps, a valid path for its final status, row version = n.
  const { rows: streams } = await sql<{ stream_id: string; types: string[]; versions: number[] }>`
    select stream_id, array_agg(type order by stream_version) as types,
           array_agg(stream_version order by stream_version) as versions
    from outbox.events where stream_type = 'order' and stream_id = any(${[...orderIds]}::text[])
    group by stream_id`.execute(shop.db);
  const byId = new Map(streams.map((row) => [row.stream_id, row]));
  for (const order of orders) {
    const stream = byId.get(order.id);
    expect(stream, `stream of ${order.id}`).toBeDefined();
    expect(stream?.versions).toEqual(stream?.types.map((_, index) => index + 1));
    expect(VALID_PATHS[order.status], order.status).toContainEqual(stream?.types);
    expect(order.version).toBe(stream?.types.length);
  }

  // Stock never went negative, and what left the shelves is exactly what shipped.
  const shipped = await sql<{ sku: string; quantity: number }>`
    select l.sku, sum(l.quantity)::int as quantity
    from shop.order_lines l join shop.orders o on o.id = l.order_id
    where o.status = 'SHIPPED' group by l.sku`.execute(shop.db);
  const taken = new Map(shipped.rows.map((row) => [row.sku, row.quantity]));
  const products = await shop.db.selectFrom('shop.products').selectAll().execute();
  for (const product of products) {
    expect(product.stock).toBeGreaterThanOrEqual(0);
    expect(product.stock, product.sku).toBe(
      (initialStock.get(product.sku) ?? 0) - (taken.get(product.sku) ?? 0),
    );
  }

  // Payments: one per order that reached the payment handler; refunded exactly when the order didn't ship.
  const payments = await shop.db.selectFrom('shop.payments').selectAll().execute();
  const paymentsByOrder = new Map(payments.map((payment) => [payment.order_id, payment]));
  expect(paymentsByOrder.size).toBe(payments.length);
  for (const order of orders) {
    const payment = paymentsByOrder.get(order.id);
    const types = byId.get(order.id)?.types ?? [];
    const charged = types.includes('PaymentSucceeded') || types.includes('PaymentFailed');
    expect(payment !== undefined, `payment of ${order.id} (${order.status})`).toBe(charged);
    if (order.status === 'SHIPPED') expect(payment?.status).toBe('approved');
    if (order.status === 'PAYMENT_FAILED') expect(payment?.status).toBe('declined');
    if (types.includes('PaymentRefunded')) expect(payment?.status).toBe('refunded');
  }

  // Reading the whole log in its gap-safe order gives every stream's events in version order.
  const lastVersion = new Map<string, number>();
  let after: { logXid: string; position: string } | undefined;
  for (;;) {
    const page = await readLogAfter(shop.db, { ...(after ? { after } : {}), limit: 1000 });
    for (const row of page.rows) {
      const streamKey = `${row.stream_type}/${row.stream_id}`;
      expect(row.stream_version).toBe((lastVersion.get(streamKey) ?? 0) + 1);
      lastVersion.set(streamKey, row.stream_version);
    }
    if (page.rows.length < 1000) break;
    after = page.next;
  }
}

beforeAll(async () => {
  shop = await startShop({ poolSize: 40, concurrency: 10 });
  await seedProducts(shop.db, CATALOGUE);
});

afterAll(async () => {
  await shop?.stop();
});

describe('under concurrency', () => {
  it('200 concurrent orders all end final, with stock, payments and streams consistent', async () => {
    const initial = new Map(CATALOGUE.map((product) => [product.sku, product.stock]));
    const rand = random(42);
    const inputs = Array.from({ length: 200 }, (_, i) => ({
      customerId: `customer-${i % 17}`,
      idempotencyKey: `bulk-${i}`,
      lines: randomLines(rand),
    }));
    const placed = await Promise.all(
      inputs.map((input, i) => placeOrder(shop.db, input, { correlationId: `bulk-${i}` })),
    );
    expect(placed.every((result) => result.created)).toBe(true);
    const ids = placed.map((result) => result.order.id);
    expect(new Set(ids).size).toBe(200);

    const orders = await waitForAllFinal(shop.db, ids);
    const statuses = new Set(orders.map((order) => order.status));
    // The catalogue is built so that every outcome happens.
    expect(statuses).toEqual(new Set(['SHIPPED', 'PAYMENT_FAILED', 'REJECTED']));
    await waitForQuiet(shop.db);
    await checkInvariants(ids, initial);

    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from outbox.events where type = 'StockDepleted'`.execute(shop.db);
    expect(rows[0]?.n).toBeGreaterThan(0);
    const deadLetters = await listDeadLetters(shop.db);
    expect(deadLetters).toEqual([]);
  });

  it('cancels racing the handlers: each order ends one way, with no double effects', async () => {
    const before = await shop.db.selectFrom('shop.products').select(['sku', 'stock']).execute();
    const initial = new Map(before.map((product) => [product.sku, product.stock]));
    // Stock consumed by the first test's orders is already accounted in `initial`; count only these orders.
    const rand = random(7);
    const placed = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        placeOrder(shop.db, {
          customerId: `racer-${i}`,
          idempotencyKey: `race-${i}`,
          lines: [{ sku: rand() < 0.5 ? 'C-KEYB' : 'C-MOUSE', quantity: 1 + Math.floor(rand() * 2) }],
        }),
      ),
    );
    const ids = placed.map((result) => result.order.id);
    // Cancel every order at a different moment of its flow.
    const outcomes = await Promise.all(
      ids.map(async (id, i) => {
        await new Promise((resolve) => setTimeout(resolve, (i % 12) * 25));
        try {
          await cancelOrder(shop.db, { orderId: id, reason: 'race' }, { correlationId: `cancel-${i}` });
          return 'cancelled';
        } catch (error) {
          if (error instanceof IllegalStateError) return 'too late';
          throw error;
        }
      }),
    );
    const orders = await waitForAllFinal(shop.db, ids);
    await waitForQuiet(shop.db);
    const cancelled = orders.filter((order) => order.status === 'CANCELLED');
    expect(cancelled.length).toBe(outcomes.filter((outcome) => outcome === 'cancelled').length);
    expect(cancelled.length).toBeGreaterThan(0);
    expect(orders.every((order) => order.status === 'CANCELLED' || order.status === 'SHIPPED')).toBe(true);

    // Only this test's shipped orders took stock since `initial`.
    const shippedHere = await sql<{ sku: string; quantity: number }>`
      select l.sku, sum(l.quantity)::int as quantity from shop.order_lines l join shop.orders o on o.id = l.order_id
      where o.status = 'SHIPPED' and o.id = any(${ids}::uuid[]) group by l.sku`.execute(shop.db);
    const after = await shop.db.selectFrom('shop.products').select(['sku', 'stock']).execute();
    for (const product of after) {
      const taken = shippedHere.rows.find((row) => row.sku === product.sku)?.quantity ?? 0;
      expect(product.stock, product.sku).toBe((initial.get(product.sku) ?? 0) - taken);
    }
    const shipments = await shop.db
      .selectFrom('shop.shipments')
      .select('order_id')
      .where(
        'order_id',
        'in',
        cancelled.map((order) => order.id),
      )
      .execute();
    expect(shipments).toEqual([]);
    const deadLetters = await listDeadLetters(shop.db);
    expect(deadLetters).toEqual([]);
  });
});
