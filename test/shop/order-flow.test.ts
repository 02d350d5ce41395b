import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pauseConsumer, resumeConsumer } from '../../src/engine/consumers/admin.ts';
import {
  ConcurrencyError,
  IllegalStateError,
  NotFoundError,
  ValidationError,
} from '../../src/engine/errors.ts';
import { readStream } from '../../src/engine/outbox/read.ts';
import { findOrder, findPayment, findShipment } from '../../src/shop/order.repository.ts';
import { cancelOrder, placeOrder } from '../../src/shop/order.service.ts';
import { findProducts } from '../../src/shop/product.repository.ts';
import { addProduct, restockProduct } from '../../src/shop/product.service.ts';
import {
  count,
  orderEventTypes,
  type RunningShop,
  seedProducts,
  startShop,
  waitForOrder,
  waitForQuiet,
} from './shop-fixtures.ts';

let shop: RunningShop;
let n = 0;
const key = () => `flow-${++n}`;

beforeAll(async () => {
  shop = await startShop({ paymentLimitCents: 100_000 });
  await seedProducts(shop.db, [
    { sku: 'KEYB', priceCents: 8_900, stock: 1_000 },
    { sku: 'MOUSE', priceCents: 2_500, stock: 1_000 },
    { sku: 'LAPTOP', priceCents: 150_000, stock: 1_000 },
    { sku: 'RARE', priceCents: 1_000, stock: 1 },
    { sku: 'PAIR', priceCents: 1_000, stock: 2 },
    { sku: 'CANCEL-ME', priceCents: 1_000, stock: 10 },
  ]);
});

afterAll(async () => {
  await shop?.stop();
});

async function stock(sku: string): Promise<number> {
  return (await findProducts(shop.db, [sku])).get(sku)?.stock ?? Number.NaN;
}

describe('the order flow', () => {
  it('takes an order from PLACED to SHIPPED, every step committing its rows with its event', async () => {
    const before = await stock('KEYB');
    const { order, created } = await placeOrder(
      shop.db,
      {
        customerId: 'ada',
        idempotencyKey: key(),
        lines: [
          { sku: 'KEYB', quantity: 2 },
          { sku: 'MOUSE', quantity: 1 },
        ],
      },
      { correlationId: 'corr-happy' },
    );
    expect(created).toBe(true);
    expect(order).toMatchObject({ status: 'PLACED', version: 1, total_cents: String(2 * 8_900 + 2_500) });

    const shipped = await waitForOrder(shop.db, order.id);
    expect(shipped.status).toBe('SHIPPED');
    const events = await readStream(shop.db, 'order', order.id);
    expect(events.map((event) => [event.type, event.stream_version])).toEqual([
      ['OrderPlaced', 1],
      ['PaymentSucceeded', 2],
      ['InventoryReserved', 3],
      ['OrderShipped', 4],
    ]);
    expect(shipped.version).toBe(4);
    // One correlation id through everything the request caused; each step caused by the one before.
    expect(events.every((event) => event.metadata.correlationId === 'corr-happy')).toBe(true);
    for (let i = 1; i < events.length; i++) {
      expect(events[i]?.metadata.causationId).toBe(events[i - 1]?.id);
    }
    expect(events[0]?.payload).toMatchObject({
      customerId: 'ada',
      totalCents: 20_300,
      lines: [
        { sku: 'KEYB', name: 'KEYB', quantity: 2, unitPriceCents: 8_900 },
        { sku: 'MOUSE', quantity: 1, unitPriceCents: 2_500 },
      ],
    });
    expect(await findPayment(shop.db, order.id)).toMatchObject({ status: 'approved', amount_cents: '20300' });
    expect(await findShipment(shop.db, order.id)).toMatchObject({ carrier: 'Postbox Parcel' });
    expect(await stock('KEYB')).toBe(before - 2);
    await waitForQuiet(shop.db);
    const kinds = await shop.db
      .selectFrom('shop.notifications')
      .select(['kind', 'customer_id'])
      .where('order_id', '=', order.id)
      .orderBy('id')
      .execute();
    expect(kinds).toEqual([
      { kind: 'OrderPlaced', customer_id: 'ada' },
      { kind: 'PaymentSucceeded', customer_id: 'ada' },
      { kind: 'OrderShipped', customer_id: 'ada' },
    ]);
  });

  it('declines a payment above the limit: PAYMENT_FAILED, no stock taken', async () => {
    const before = await stock('LAPTOP');
    const { order } = await placeOrder(shop.db, {
      customerId: 'bob',
      idempotencyKey: key(),
      lines: [{ sku: 'LAPTOP', quantity: 1 }],
    });
    const failed = await waitForOrder(shop.db, order.id);
    expect(failed.status).toBe('PAYMENT_FAILED');
    expect(failed.status_reason).toMatch(/above the limit/);
    expect(await orderEventTypes(shop.db, order.id)).toEqual(['OrderPlaced', 'PaymentFailed']);
    expect(await findPayment(shop.db, order.id)).toMatchObject({ status: 'declined' });
    expect(await stock('LAPTOP')).toBe(before);
  });

  it('rejects an order the stock cannot serve after payment, and refunds it', async () => {
    const { order } = await placeOrder(shop.db, {
      customerId: 'cy',
      idempotencyKey: key(),
      lines: [
        { sku: 'RARE', quantity: 2 },
        { sku: 'KEYB', quantity: 1 },
      ],
    });
    const rejected = await waitForOrder(shop.db, order.id);
    expect(rejected.status).toBe('REJECTED');
    expect(rejected.version).toBe(4);
    const events = await readStream(shop.db, 'order', order.id);
    expect(events.map((event) => event.type)).toEqual([
      'OrderPlaced',
      'PaymentSucceeded',
      'OrderRejected',
      'PaymentRefunded',
    ]);
    expect(events[2]?.payload).toMatchObject({ missing: [{ sku: 'RARE', requested: 2, available: 1 }] });
    expect(await findPayment(shop.db, order.id)).toMatchObject({ status: 'refunded' });
    expect(await stock('RARE')).toBe(1);
  });

  it('announces StockDepleted on the product stream when a reservation empties it', async () => {
    const { order } = await placeOrder(shop.db, {
      customerId: 'di',
      idempotencyKey: key(),
      lines: [{ sku: 'PAIR', quantity: 2 }],
    });
    expect((await waitForOrder(shop.db, order.id)).status).toBe('SHIPPED');
    expect(await stock('PAIR')).toBe(0);
    const productEvents = await readStream(shop.db, 'product', 'PAIR');
    expect(productEvents.map((event) => event.type)).toEqual(['ProductAdded', 'StockDepleted']);
    expect(productEvents[1]?.payload).toEqual({ sku: 'PAIR', orderId: order.id });

    const restocked = await restockProduct(shop.db, { sku: 'PAIR', quantity: 5 });
    expect(restocked.stock).toBe(5);
    expect((await readStream(shop.db, 'product', 'PAIR')).at(-1)?.payload).toEqual({
      sku: 'PAIR',
      quantity: 5,
      stock: 5,
    });
  });
});

describe('cancelling', () => {
  it('cancels a PLACED order; the payment handler then leaves it alone', async () => {
    await pauseConsumer(shop.db, 'payment');
    try {
      const { order } = await placeOrder(shop.db, {
        customerId: 'eve',
        idempotencyKey: key(),
        lines: [{ sku: 'CANCEL-ME', quantity: 1 }],
      });
      const cancelled = await cancelOrder(shop.db, { orderId: order.id, reason: 'changed my mind' });
      expect(cancelled).toMatchObject({ status: 'CANCELLED', version: 2, status_reason: 'changed my mind' });
      await resumeConsumer(shop.db, 'payment');
      await waitForQuiet(shop.db);
      expect(await orderEventTypes(shop.db, order.id)).toEqual(['OrderPlaced', 'OrderCancelled']);
      expect(await findPayment(shop.db, order.id)).toBeUndefined();
      expect((await findOrder(shop.db, order.id))?.status).toBe('CANCELLED');
    } finally {
      await resumeConsumer(shop.db, 'payment');
    }
  });

  it('cancels a RESERVED order: stock goes back, the payment is refunded, nothing ships', async () => {
    await pauseConsumer(shop.db, 'shipping');
    try {
      const before = await stock('CANCEL-ME');
      const { order } = await placeOrder(shop.db, {
        customerId: 'fay',
        idempotencyKey: key(),
        lines: [{ sku: 'CANCEL-ME', quantity: 3 }],
      });
      await waitForOrder(shop.db, order.id, (row) => row.status === 'RESERVED');
      expect(await stock('CANCEL-ME')).toBe(before - 3);
      const cancelled = await cancelOrder(shop.db, {
        orderId: order.id,
        reason: 'too slow',
        expectedVersion: 3,
      });
      expect(cancelled).toMatchObject({ status: 'CANCELLED', version: 5 });
      expect(await stock('CANCEL-ME')).toBe(before);
      await resumeConsumer(shop.db, 'shipping');
      await waitForQuiet(shop.db);
      const events = await readStream(shop.db, 'order', order.id);
      expect(events.map((event) => event.type)).toEqual([
        'OrderPlaced',
        'PaymentSucceeded',
        'InventoryReserved',
        'OrderCancelled',
        'PaymentRefunded',
      ]);
      expect(events[3]?.payload).toMatchObject({ previousStatus: 'RESERVED', stockReleased: true });
      expect(await findPayment(shop.db, order.id)).toMatchObject({ status: 'refunded' });
      expect(await findShipment(shop.db, order.id)).toBeUndefined();
    } finally {
      await resumeConsumer(shop.db, 'shipping');
    }
  });

  it('refuses illegal transitions and stale versions with typed errors', async () => {
    const { order } = await placeOrder(shop.db, {
      customerId: 'gil',
      idempotencyKey: key(),
      lines: [{ sku: 'KEYB', quantity: 1 }],
    });
    await waitForOrder(shop.db, order.id);
    await expect(cancelOrder(shop.db, { orderId: order.id, reason: 'late' })).rejects.toBeInstanceOf(
      IllegalStateError,
    );
    await expect(
      cancelOrder(shop.db, { orderId: order.id, reason: 'late', expectedVersion: 1 }),
    ).rejects.toMatchObject({ code: 'CONCURRENCY_CONFLICT', expectedVersion: 1, actualVersion: 4 });
    await expect(
      cancelOrder(shop.db, { orderId: '00000000-0000-4000-8000-000000000000', reason: 'x' }),
    ).rejects.toBeInstanceOf(NotFoundError);
    await expect(cancelOrder(shop.db, { orderId: 'nope', reason: 'x' })).rejects.toBeInstanceOf(
      NotFoundError,
    );
    await expect(cancelOrder(shop.db, { orderId: order.id, reason: '  ' })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      field: 'reason',
    });
    expect(await orderEventTypes(shop.db, order.id)).toHaveLength(4);
  });

  it('a stale expectedVersion loses even when the status would allow the cancel', async () => {
    await pauseConsumer(shop.db, 'payment');
    try {
      const { order } = await placeOrder(shop.db, {
        customerId: 'hal',
        idempotencyKey: key(),
        lines: [{ sku: 'KEYB', quantity: 1 }],
      });
      const error = await cancelOrder(shop.db, { orderId: order.id, reason: 'x', expectedVersion: 2 }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConcurrencyError);
      expect((await findOrder(shop.db, order.id))?.status).toBe('PLACED');
    } finally {
      await resumeConsumer(shop.db, 'payment');
    }
  });
});

describe('placing orders', () => {
  it('is idempotent by key, also under concurrency, and refuses a key reused for another order', async () => {
    const idempotencyKey = key();
    const input = { customerId: 'ivy', idempotencyKey, lines: [{ sku: 'MOUSE', quantity: 1 }] };
    const results = await Promise.all(Array.from({ length: 10 }, () => placeOrder(shop.db, input)));
    const ids = new Set(results.map((result) => result.order.id));
    expect(ids.size).toBe(1);
    expect(results.filter((result) => result.created)).toHaveLength(1);
    expect(await count(shop.db, 'shop.orders', `idempotency_key = '${idempotencyKey}'`)).toBe(1);
    const again = await placeOrder(shop.db, input);
    expect(again).toMatchObject({ created: false });
    expect(again.order.id).toBe([...ids][0]);
    await expect(
      placeOrder(shop.db, { ...input, lines: [{ sku: 'MOUSE', quantity: 2 }] }),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'idempotencyKey' });
    const [orderId] = ids;
    expect(await readStream(shop.db, 'order', orderId as string)).not.toHaveLength(0);
    expect((await readStream(shop.db, 'order', orderId as string))[0]?.type).toBe('OrderPlaced');
  });

  it.each([
    ['an unknown SKU', [{ sku: 'NOPE', quantity: 1 }], 'lines.0.sku'],
    ['a zero quantity', [{ sku: 'KEYB', quantity: 0 }], 'lines.0.quantity'],
    [
      'a negative quantity',
      [
        { sku: 'KEYB', quantity: 1 },
        { sku: 'MOUSE', quantity: -3 },
      ],
      'lines.1.quantity',
    ],
    ['a fractional quantity', [{ sku: 'KEYB', quantity: 1.5 }], 'lines.0.quantity'],
    ['no lines', [], 'lines'],
    [
      'a SKU twice',
      [
        { sku: 'KEYB', quantity: 1 },
        { sku: 'KEYB', quantity: 1 },
      ],
      'lines.1.sku',
    ],
  ])('refuses %s with a ValidationError and writes nothing', async (_name, lines, field) => {
    await waitForQuiet(shop.db); // earlier tests' orders are done moving
    const orders = await count(shop.db, 'shop.orders');
    const events = await count(shop.db, 'outbox.events');
    const error = await placeOrder(shop.db, { customerId: 'x', idempotencyKey: key(), lines }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ field });
    expect(await count(shop.db, 'shop.orders')).toBe(orders);
    expect(await count(shop.db, 'outbox.events')).toBe(events);
  });

  it('refuses a duplicate product and a restock of an unknown one', async () => {
    await expect(
      addProduct(shop.db, { sku: 'KEYB', name: 'again', priceCents: 1, stock: 1 }),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED', field: 'sku' });
    await expect(restockProduct(shop.db, { sku: 'GHOST', quantity: 1 })).rejects.toBeInstanceOf(
      NotFoundError,
    );
    await expect(restockProduct(shop.db, { sku: 'KEYB', quantity: 0 })).rejects.toMatchObject({
      field: 'quantity',
    });
    await expect(
      addProduct(shop.db, { sku: '-bad', name: 'x', priceCents: 1, stock: 1 }),
    ).rejects.toMatchObject({
      field: 'sku',
    });
    await expect(
      addProduct(shop.db, { sku: 'NEG', name: 'x', priceCents: -1, stock: 1 }),
    ).rejects.toMatchObject({
      field: 'priceCents',
    });
  });

  it('keeps every order row at its stream version', async () => {
    await waitForQuiet(shop.db);
    const { rows: mismatches } = await sql`
      select o.id, o.version, s.version as stream_version
      from shop.orders o left join outbox.streams s on s.stream_type = 'order' and s.stream_id = o.id::text
      where s.version is distinct from o.version`.execute(shop.db);
    expect(mismatches).toEqual([]);
  });
});
