import { Logger as WorkerLogger } from 'graphile-worker';
import type pg from 'pg';
import { pauseConsumer } from '../../src/engine/consumers/admin.ts';
import { defineConsumer } from '../../src/engine/consumers/consumer.ts';
import { createDb } from '../../src/engine/db/database.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import type { BenchDatabase } from './server.ts';
import { OrderPlaced } from './workload.ts';

/** A graphile-worker logger that drops everything (the bench prints its own output). */
export const quietWorkerLogger = new WorkerLogger(() => () => undefined);

/** Resolves once `done()` is true (checked every 2 ms); rejects after `timeoutMs`. */
export function waitUntil(
  done: () => boolean,
  timeoutMs: number,
  what: () => string = () => 'condition',
): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      if (done()) return resolve();
      if (Date.now() - started > timeoutMs)
        return reject(new Error(`timed out after ${timeoutMs} ms: ${what()}`));
      setTimeout(check, 2);
    };
    check();
  });
}

/**
 * Writes `events` OrderPlaced events (each its own stream, version 1) straight into the log with set-based
 * INSERTs of up to 10,000 rows per transaction: the same rows `appendEvents` writes, in a fraction of the
 * time. Returns the seconds it took.
 */
export async function fillEventBacklog(pool: pg.Pool, events: number): Promise<number> {
  const started = performance.now();
  const chunk = 10_000;
  for (let from = 1; from <= events; from += chunk) {
    const to = Math.min(events, from + chunk - 1);
    await pool.query(
      `with ids as (
         select g, gen_random_uuid() as order_id from generate_series($1::int, $2::int) g
       ), streams as (
         insert into outbox.streams (stream_type, stream_id, version, log_xid)
         select 'order', order_id::text, 1, pg_current_xact_id() from ids
       )
       insert into outbox.events (id, log_xid, stream_type, stream_id, stream_version, type, payload)
       select gen_random_uuid(), pg_current_xact_id(), 'order', order_id::text, 1, 'OrderPlaced',
              jsonb_build_object('orderId', order_id::text, 'customerId', 'customer-' || (g % 1000),
                                 'totalCents', 1000 + g % 9000,
                                 'lines', jsonb_build_array(
                                   jsonb_build_object('sku', 'sku-coffee-250g', 'quantity', 2),
                                   jsonb_build_object('sku', 'sku-filter-papers', 'quantity', 1)))
       from ids`,
      [from, to],
    );
  }
  return (performance.now() - started) / 1000;
}

/** Before a timed drain: fresh planner statistics and no dirty pages left over from filling. */
export async function settle(pool: pg.Pool, tables: readonly string[]): Promise<void> {
  for (const table of tables) await pool.query(`analyze ${table}`);
  await pool.query('checkpoint');
}

/**
 * Postbox (relay and drains) on a pool of its own with one consumer `name` of OrderPlaced that starts at
 * the current end of the log and does nothing but count (`onHandled`); `onWakeup` sees each NOTIFY that
 * woke the relay. `stop()` also pauses the consumer — otherwise a later round's relay would keep enqueueing
 * drain jobs for it, which no process runs any more — and ends the pool.
 */
export async function startNoopConsumer(
  database: BenchDatabase,
  name: string,
  observe: { readonly onWakeup?: () => void; readonly onHandled?: () => void } = {},
): Promise<Postbox> {
  const pool = database.pool(8 + 4);
  const consumer = defineConsumer({
    name,
    on: [OrderPlaced],
    startFrom: 'now',
    async handle() {
      observe.onHandled?.();
    },
  });
  const postbox = await startPostbox({
    pool,
    consumers: [consumer],
    // The bench records unhandled rejections itself (bench/run.ts) instead of ending the process.
    guardWorkerRejections: false,
  });
  postbox.events.on('relay', ({ kind }) => {
    if (kind === 'wakeup') observe.onWakeup?.();
  });
  const stop = postbox.stop;
  return {
    ...postbox,
    async stop() {
      await stop();
      await pauseConsumer(createDb(pool), name);
      await pool.end();
    },
  };
}
