import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Kysely, sql } from 'kysely';
import type pg from 'pg';
import { z } from 'zod';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { defineEvent } from '../../src/engine/outbox/event.ts';

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

/** One order of the workload: the business row and the payload of its event (≈ 180 bytes of JSON). */
export interface Order {
  readonly orderId: string;
  readonly customerId: string;
  readonly totalCents: number;
  readonly payload: z.output<typeof OrderPlaced.schema>;
}

let customerCounter = 0;

/** A new order (fresh uuid, one of 1000 customers, two lines). */
export function makeOrder(): Order {
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
export async function rawOrderTransaction(pool: pg.Pool): Promise<void> {
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
export async function appendOrderTransaction<DB>(
  db: Kysely<DB>,
  onCommitted?: (eventId: string) => void,
): Promise<void> {
  const order = makeOrder();
  const event = OrderPlaced.create(order.orderId, order.payload);
  await db.transaction().execute(async (trx) => {
    await sql`insert into bench.orders (id, customer_id, total_cents)
              values (${order.orderId}, ${order.customerId}, ${order.totalCents})`.execute(trx);
    await appendEvents(trx, [event]);
  });
  onCommitted?.(event.id);
}

/** Result of {@link runClosedLoop}. */
export interface ClosedLoopResult {
  readonly completed: number;
  readonly failed: number;
  readonly seconds: number;
  /** Completed transactions per second. */
  readonly rate: number;
}

/**
 * `concurrency` clients each run `transaction` back to back for `seconds`; the rate counts transactions
 * that completed, over the time until the last client finished.
 */
export async function runClosedLoop(
  concurrency: number,
  seconds: number,
  transaction: () => Promise<void>,
): Promise<ClosedLoopResult> {
  let completed = 0;
  let failed = 0;
  let firstError: unknown;
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

/** Options of {@link runOpenLoop}. */
export interface OpenLoopOptions {
  /** Transactions started per second, on schedule, whatever the system's response. */
  readonly rate: number;
  readonly seconds: number;
  /** Transactions in flight at most (the producer's connections); beyond that, due ones queue. */
  readonly maxInFlight: number;
  readonly transaction: () => Promise<void>;
  /** Called every `sampleMs` with seconds since start and the transactions due by now (on schedule). */
  readonly onSample?: (elapsedSeconds: number, due: number) => void;
  readonly sampleMs?: number;
}

/** Result of {@link runOpenLoop}. */
export interface OpenLoopResult {
  readonly started: number;
  readonly completed: number;
  readonly failed: number;
  readonly seconds: number;
  /** Transactions that were due but never started (the producer could not keep its schedule). */
  readonly behind: number;
}

/**
 * Steady load: starts transactions on a fixed schedule (an open loop, so a slow system does not slow the
 * offered load down), up to `maxInFlight` at once.
 */
export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  let started = 0;
  let completed = 0;
  let failed = 0;
  let inFlight = 0;
  const begin = performance.now();
  const end = begin + options.seconds * 1000;
  const pending = new Set<Promise<void>>();
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
      const promise: Promise<void> = options
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
