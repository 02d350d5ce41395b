import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { z } from 'zod';
import { appendEvents } from '../../src/engine/outbox/append.js';
import { defineEvent } from '../../src/engine/outbox/event.js';
/** The event every bench transaction appends: one per order, its own stream. */
export const OrderPlaced = defineEvent({
  type: 'OrderPlaced',
  streamType: 'order',
  schema: z.object({
    orderId: z.string(),
    customerId: z.string(),
    totalCents: z.number().int(),
    lines: z.array(z.object({ sku: z.string(), quantity: z.number().int() })),
  }),
});
let customerCounter = 0;
/** A new order (fresh uuid, one of 1000 customers, two lines). */
export function makeOrder() {
  const orderId = randomUUID();
  const customerId = `customer-${customerCounter++ % 1000}`;
  const totalCents = 1000 + (customerCounter % 9000);
  return {
    orderId,
    customerId,
    totalCents,
    payload: {
      orderId,
      customerId,
      totalCents,
      lines: [
        { sku: 'sku-coffee-250g', quantity: 2 },
        { sku: 'sku-filter-papers', quantity: 1 },
      ],
    },
  };
}
/**
 * The physical limit: `BEGIN; INSERT order; INSERT event row; COMMIT` with plain pg calls, the event row
 * going to the bench's minimal outbox table. No Postbox code.
 */
export async function rawOrderTransaction(pool) {
  const order = makeOrder();
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query('insert into bench.orders (id, customer_id, total_cents) values ($1, $2, $3)', [
      order.orderId,
      order.customerId,
      order.totalCents,
    ]);
    await client.query(
      'insert into bench.outbox_raw (event_id, type, stream_id, payload) values ($1, $2, $3, $4)',
      [randomUUID(), 'OrderPlaced', order.orderId, JSON.stringify(order.payload)],
    );
    await client.query('commit');
    client.release();
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    client.release();
    throw error;
  }
}
/**
 * The same work through Postbox: the order row and `appendEvents` (one `OrderPlaced`) in one Kysely
 * transaction. Calls `onCommitted(eventId)` right after COMMIT resolved.
 */
export async function appendOrderTransaction(db, onCommitted) {
  const order = makeOrder();
  const event = OrderPlaced.create(order.orderId, order.payload);
  await db.transaction().execute(async (trx) => {
    await sql`insert into bench.orders (id, customer_id, total_cents)
              values (${order.orderId}, ${order.customerId}, ${order.totalCents})`.execute(trx);
    await appendEvents(trx, [event]);
  });
  onCommitted?.(event.id);
}
/**
 * `concurrency` clients each run `transaction` back to back for `seconds`; the rate counts transactions
 * that completed, over the time until the last client finished.
 */
export async function runClosedLoop(concurrency, seconds, transaction) {
  let completed = 0;
  let failed = 0;
  let firstError;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const client = async () => {
    while (performance.now() < deadline) {
      try {
        await transaction();
        completed++;
      } catch (error) {
        failed++;
        firstError ??= error;
        if (failed > 100 && failed > completed) throw firstError;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  const elapsed = (performance.now() - started) / 1000;
  return { completed, failed, seconds: elapsed, rate: completed / elapsed };
}
/**
 * Steady load: starts transactions on a fixed schedule (an open loop, so a slow system does not slow the
 * offered load down), up to `maxInFlight` at once.
 */
export async function runOpenLoop(options) {
  let started = 0;
  let completed = 0;
  let failed = 0;
  let inFlight = 0;
  const begin = performance.now();
  const end = begin + options.seconds * 1000;
  const pending = new Set();
  let nextSample = begin + (options.sampleMs ?? 250);
  let due = 0;
  for (;;) {
    const now = performance.now();
    if (now >= nextSample) {
      options.onSample?.((now - begin) / 1000, Math.floor(((now - begin) / 1000) * options.rate));
      nextSample += options.sampleMs ?? 250;
    }
    if (now >= end) break;
    due = Math.floor(((now - begin) / 1000) * options.rate);
    while (started < due && inFlight < options.maxInFlight) {
      started++;
      inFlight++;
      const promise = options
        .transaction()
        .then(
          () => {
            completed++;
          },
          () => {
            failed++;
          },
        )
        .finally(() => {
          inFlight--;
          pending.delete(promise);
        });
      pending.add(promise);
    }
    await sleep(1);
  }
  await Promise.all(pending);
  return {
    started,
    completed,
    failed,
    seconds: (performance.now() - begin) / 1000,
    behind: Math.max(0, due - started),
  };
}
//# sourceMappingURL=workload.js.map
