/**
 * Where the append path's cost goes, step by step from the raw baseline to `appendEvents`: each variant
 * adds one thing. Interleaved rounds on one fresh database; prints tx/s, share of the raw baseline and WAL
 * bytes per transaction. A diagnostic for engine work, not part of `postbox bench`.
 *
 *   node bench/probes/append-breakdown.ts [concurrency=16] [seconds=3] [rounds=4] [--database-url URL]
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type pg from 'pg';
import { createDb } from '../../src/engine/db/database.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { probeArgs } from '../lib/probe-args.ts';
import { startBenchServer } from '../lib/server.ts';
import { summarize } from '../lib/stats.ts';
import { makeOrder, type Order, OrderPlaced, rawOrderTransaction, runClosedLoop } from '../lib/workload.ts';

const {
  databaseUrl,
  values: [concurrency, seconds, rounds],
} = probeArgs([16, 3, 4]);

const server = await startBenchServer(databaseUrl);
const database = await server.createDatabase('append_breakdown');
const pool = database.pool(concurrency);
const db = createDb(pool);
// A loaded system: the relay is awake, so the wake-up trigger checks and does not NOTIFY.
await pool.query("select setval('outbox.relay_sleeping', 0)");
// outbox.events' shape and indexes, without its trigger.
await pool.query(
  'create table bench.events_copy (like outbox.events including defaults including constraints including indexes including identity)',
);
// The same table with the wake-up decided inside a PL/pgSQL trigger body, as before migration 000014 (which
// moved it into the trigger's WHEN condition, evaluated by the executor without calling the function).
await pool.query(`create function bench.wake_relay_plpgsql() returns trigger language plpgsql as $$
  declare mode text := coalesce(current_setting('postbox.notify', true), '');
  begin
    if mode = 'always' or (mode <> 'never' and (select last_value from outbox.relay_sleeping) <> 0) then
      perform pg_notify('postbox_events', '');
    end if;
    return null;
  end $$`);
await pool.query(
  'create table bench.events_plpgsql (like outbox.events including defaults including constraints including indexes including identity)',
);
await pool.query(`create trigger events_wake_relay after insert on bench.events_plpgsql for each statement
  execute function bench.wake_relay_plpgsql()`);

/** pg: BEGIN; order; `statement`; COMMIT. */
async function pgTransaction(statement: (order: Order) => [string, unknown[]]): Promise<void> {
  const order = makeOrder();
  const client: pg.PoolClient = await pool.connect();
  try {
    await client.query('begin');
    await client.query('insert into bench.orders (id, customer_id, total_cents) values ($1, $2, $3)', [
      order.orderId,
      order.customerId,
      order.totalCents,
    ]);
    const [text, params] = statement(order);
    await client.query(text, params);
    await client.query('commit');
  } finally {
    client.release();
  }
}

const eventInsert =
  (table: string) =>
  (order: Order): [string, unknown[]] => [
    `insert into ${table} (id, log_xid, stream_type, stream_id, stream_version, type, payload)
   values ($1, pg_current_xact_id(), 'order', $2, 1, 'OrderPlaced', $3)`,
    [randomUUID(), order.orderId, JSON.stringify(order.payload)],
  ];
// The statement appendEvents runs for one event on a new stream (stream row upsert + event insert).
const appendStatement = (order: Order): [string, unknown[]] => [
  `with head as (
     insert into outbox.streams as s (stream_type, stream_id, version, log_xid)
     values ('order', $2, 1, pg_current_xact_id())
     on conflict (stream_type, stream_id) do update
       set version = s.version + excluded.version, log_xid = greatest(s.log_xid, excluded.log_xid), updated_at = now()
     returning s.version, s.log_xid)
   insert into outbox.events (id, log_xid, stream_type, stream_id, stream_version, type, schema_version, payload,
                              metadata, occurred_at)
   select $1, head.log_xid, 'order', $2, head.version, 'OrderPlaced', 1, $3, '{}', now() from head
   returning id, position, stream_version, log_xid`,
  [randomUUID(), order.orderId, JSON.stringify(order.payload)],
];

// The same without a stream row: the version and log_xid come from the stream's last event; a concurrent
// writer of the same version makes the insert a no-op (ON CONFLICT DO NOTHING) and the caller retries.
const optimisticStatement = (order: Order): [string, unknown[]] => [
  `with last as (
     select stream_version, log_xid from outbox.events
     where stream_type = 'order' and stream_id = $2
     order by stream_version desc limit 1)
   insert into outbox.events (id, log_xid, stream_type, stream_id, stream_version, type, schema_version, payload,
                              metadata, occurred_at)
   select $1, greatest(pg_current_xact_id(), (select log_xid from last)), 'order', $2,
          coalesce((select stream_version from last), 0) + 1, 'OrderPlaced', 1, $3, '{}', now()
   on conflict (stream_type, stream_id, stream_version) do nothing
   returning id, position, stream_version, log_xid`,
  [randomUUID(), order.orderId, JSON.stringify(order.payload)],
];

const variants: Record<string, () => Promise<void>> = {
  'raw baseline (pg, bench.outbox_raw)': () => rawOrderTransaction(pool),
  'same through Kysely': async () => {
    const order = makeOrder();
    await db.transaction().execute(async (trx) => {
      await sql`insert into bench.orders (id, customer_id, total_cents)
                values (${order.orderId}, ${order.customerId}, ${order.totalCents})`.execute(trx);
      await sql`insert into bench.outbox_raw (event_id, type, stream_id, payload)
                values (${randomUUID()}, 'OrderPlaced', ${order.orderId}, ${JSON.stringify(order.payload)})`.execute(
        trx,
      );
    });
  },
  'pg: events-shaped table, its indexes': () => pgTransaction(eventInsert('bench.events_copy')),
  'pg: outbox.events (+ wake-up trigger)': () => pgTransaction(eventInsert('outbox.events')),
  'pg: same, check in a PL/pgSQL body': () => pgTransaction(eventInsert('bench.events_plpgsql')),
  'pg: + stream row (appendEvents SQL)': () => pgTransaction(appendStatement),
  'pg: optimistic, no stream row': () => pgTransaction(optimisticStatement),
  'appendEvents (Kysely)': async () => {
    const order = makeOrder();
    const event = OrderPlaced.create(order.orderId, order.payload);
    await db.transaction().execute(async (trx) => {
      await sql`insert into bench.orders (id, customer_id, total_cents)
                values (${order.orderId}, ${order.customerId}, ${order.totalCents})`.execute(trx);
      await appendEvents(trx, [event]);
    });
  },
};

const names = Object.keys(variants);
const rates = new Map<string, number[]>(names.map((name) => [name, []]));
const walPerTx = new Map<string, number[]>(names.map((name) => [name, []]));
for (const name of names)
  await runClosedLoop(concurrency, Math.min(1, seconds), variants[name] as () => Promise<void>);
for (let round = 0; round < rounds; round++) {
  for (const name of round % 2 === 0 ? names : [...names].reverse()) {
    const { rows } = await pool.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
    const result = await runClosedLoop(concurrency, seconds, variants[name] as () => Promise<void>);
    const { rows: wal } = await pool.query<{ bytes: string }>(
      'select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::text as bytes',
      [rows[0]?.lsn],
    );
    rates.get(name)?.push(result.rate);
    walPerTx.get(name)?.push(Number(wal[0]?.bytes) / Math.max(1, result.completed));
  }
  process.stderr.write(`round ${round + 1}/${rounds}\n`);
}
const base = summarize(rates.get(names[0] as string) ?? []).median;
process.stdout.write(`concurrency ${concurrency}, ${rounds} rounds of ${seconds}s\n`);
for (const name of names) {
  const rate = summarize(rates.get(name) ?? []);
  const wal = summarize(walPerTx.get(name) ?? []);
  process.stdout.write(
    `${name.padEnd(40)} ${rate.median.toFixed(0).padStart(6)} tx/s  ${((rate.median / base) * 100).toFixed(0).padStart(3)}%  ` +
      `(${rate.min.toFixed(0)}–${rate.max.toFixed(0)})  WAL ${wal.median.toFixed(0)} B/tx\n`,
  );
}
await database.drop();
await server.stop();
