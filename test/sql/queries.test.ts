import { promises as fs } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDestination } from '../../src/engine/index.ts';
import { formatCsv, formatTable, toJsonRows } from '../../src/sql/format-result.ts';
import { queriesDir, readQueryCatalogue, type SqlQuery } from '../../src/sql/query-catalogue.ts';
import { runQuery } from '../../src/sql/run-query.ts';
import { childEnv, cliEntry, type Finished, makeTempDir, runNode } from '../foundation/processes.ts';
import {
  CATALOGUE_SYNC,
  catalogueSyncError,
  type FilledDatabase,
  fillWithDemoFlow,
  psqlPath,
  runPsql,
} from './sql-fixtures.ts';

type Row = Record<string, unknown>;

const catalogue = await readQueryCatalogue();
const byName = new Map(catalogue.map((query) => [query.name, query]));
/** Files run both ways so far; the last test checks that this is every file of sql/. */
const exercised = new Set<string>();

let filled: FilledDatabase;
let client: pg.Client;

beforeAll(async () => {
  if (!psqlPath) console.warn('psql is not installed: the psql half of each check in test/sql is skipped');
  filled = await fillWithDemoFlow(60);
  client = new pg.Client({ connectionString: filled.database.url });
  await client.connect();
}, 240_000);

afterAll(async () => {
  await client?.end();
  await filled?.database.drop();
});

function query(name: string): SqlQuery {
  const found = byName.get(name);
  if (!found) throw new Error(`no sql/${name}.sql`);
  return found;
}

/** `postbox sql <args>` in a child process against the filled database. */
function postboxSql(args: readonly string[], url = filled.database.url): Promise<Finished> {
  return runNode([cliEntry, 'sql', ...args], childEnv({ DATABASE_URL: url }));
}

function varArgs(variables: Record<string, string>): string[] {
  return Object.entries(variables).flatMap(([name, value]) => ['--var', `${name}=${value}`]);
}

/**
 * Runs a file through `postbox sql --format json` and through `psql -v … -f` (aligned and --csv), and
 * requires the same answer from all of them: psql's text must equal, byte for byte, what postbox sql's table
 * and csv formats print for the same result (computed in this process by the CLI's own module, so that
 * further variants of a file can skip the 2-second CLI start: `cli: false`). Returns the rows.
 */
async function bothWays(
  name: string,
  variables: Record<string, string> = {},
  options: { cli?: boolean } = {},
): Promise<Row[]> {
  const file = query(name);
  const result = await runQuery(client, file, variables);
  const rows = toJsonRows(result);
  if (options.cli ?? true) {
    const cli = await postboxSql([name, ...varArgs(variables), '--format', 'json']);
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout)).toEqual(rows);
  }
  if (psqlPath) {
    expect(await runPsql(filled.database.url, file.file, variables)).toBe(formatTable(result));
    expect(await runPsql(filled.database.url, file.file, variables, { csv: true })).toBe(formatCsv(result));
  }
  exercised.add(name);
  return rows;
}

async function scalar<T>(text: string, values: unknown[] = []): Promise<T> {
  const { rows } = await client.query(text, values);
  return Object.values(rows[0] ?? {})[0] as T;
}

/** Events per type the flow produced: the demo's own count (from its subscription) plus the steps after it. */
function expectedEventTypes(): Record<string, number> {
  const expected: Record<string, number> = { ...filled.report.eventTypes };
  for (const [type, n] of Object.entries(filled.extraEvents)) expected[type] = (expected[type] ?? 0) + n;
  return expected;
}

const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);
const everything = { from: '-infinity', to: 'infinity' };

/** `HH:MM:SS[.ffffff]` → microseconds. */
function micros(interval: unknown): number {
  const match = /^(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?$/.exec(String(interval));
  if (!match) throw new Error(`not an interval under a day: ${String(interval)}`);
  const [, h, m, s, fraction = ''] = match;
  return ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1e6 + Number(fraction.padEnd(6, '0'));
}

/** Postgres' percentile_cont: linear interpolation between the closest ranks. */
function percentileCont(sorted: readonly number[], fraction: number): number {
  const position = fraction * (sorted.length - 1);
  const lower = sorted[Math.floor(position)] as number;
  const upper = sorted[Math.ceil(position)] as number;
  return lower + (upper - lower) * (position - Math.floor(position));
}

describe('the catalogue', () => {
  it('`postbox sql` lists every file of sql/ with what it answers and its variables', async () => {
    const listed = await postboxSql([]);
    expect(listed.code).toBe(0);
    for (const entry of catalogue) {
      const lines = listed.stdout.split('\n');
      expect(lines.some((line) => line.startsWith(`${entry.name} `) && line.endsWith(entry.title))).toBe(
        true,
      );
      for (const parameter of entry.parameters) expect(listed.stdout).toContain(`--var ${parameter.name}=…`);
    }
    expect(catalogue.length).toBeGreaterThanOrEqual(13);
  });

  it('every file has a header: what it answers, its psql variables, and both ways to run it', () => {
    for (const entry of catalogue) {
      expect(entry.title.length, entry.name).toBeGreaterThan(10);
      expect(entry.description.length, entry.name).toBeGreaterThan(40);
      expect(
        entry.examples.some((line) => line.startsWith('psql ') && line.includes(`sql/${entry.name}.sql`)),
      ).toBe(true);
      expect(entry.examples.some((line) => line.startsWith(`postbox sql ${entry.name}`))).toBe(true);
      for (const parameter of entry.parameters) {
        expect(entry.examples.join(' '), `${entry.name} example sets ${parameter.name}`).toMatch(
          new RegExp(`(-v|--var) ${parameter.name}=`),
        );
      }
    }
  });
});

describe('every query against the demo flow, through postbox sql and psql', () => {
  it('stream_history: the order cancelled while reserved, step by step, with actors and causes', async () => {
    const { id, placedBy, cancelledBy, reason } = filled.cancelledReserved;
    const rows = await bothWays('stream_history', { stream_type: 'order', stream_id: id });
    expect(rows.map((row) => [row.version, row.type, row.actor, row.caused_by, row.correlation_id])).toEqual([
      [1, 'OrderPlaced', 'api', null, placedBy],
      [2, 'PaymentSucceeded', 'consumer:payment', 'OrderPlaced', placedBy],
      [3, 'InventoryReserved', 'consumer:inventory', 'PaymentSucceeded', placedBy],
      [4, 'OrderCancelled', 'api', null, cancelledBy],
      [5, 'PaymentRefunded', 'api', null, cancelledBy],
    ]);
    expect(rows[3]?.payload).toEqual({
      orderId: id,
      reason,
      previousStatus: 'RESERVED',
      stockReleased: true,
    });
    const total = Number(await scalar<string>('select total_cents from shop.orders where id = $1', [id]));
    expect(rows[4]?.payload).toMatchObject({ orderId: id, amountCents: total, reason: 'CANCELLED' });

    const product = await bothWays(
      'stream_history',
      { stream_type: 'product', stream_id: filled.gpuSku },
      { cli: false },
    );
    expect(product[0]).toMatchObject({ version: 1, type: 'ProductAdded', caused_by: null });
    expect(product.at(-1)).toMatchObject({
      type: 'ProductRestocked',
      payload: { sku: filled.gpuSku, quantity: filled.restocked.quantity },
    });
    const stock = await scalar<number>('select stock from shop.products where sku = $1', [filled.gpuSku]);
    expect(product.at(-1)?.payload).toMatchObject({ stock });
  });

  it('causation_chain: a shipped order as a tree, the seeding request, and an order placed and cancelled apart', async () => {
    const { rows: shipped } = await client.query<{ id: string; idempotency_key: string }>(`
      select o.id, o.idempotency_key from shop.orders o
      where o.status = 'SHIPPED' and o.idempotency_key like 'demo-%'
        and not exists (select from shop.order_lines l where l.order_id = o.id and l.sku like 'GPU-%')
      order by o.seq limit 1`);
    const order = shipped[0];
    if (!order) throw new Error('the demo shipped no order without a GPU');
    const tree = await bothWays('causation_chain', { correlation_id: order.idempotency_key });
    expect(
      tree.map((row) => [row.depth, row.event, row.stream_id, row.version, row.caused_by, row.actor]),
    ).toEqual([
      [0, 'OrderPlaced', order.id, 1, null, 'api'],
      [1, '  PaymentSucceeded', order.id, 2, 'OrderPlaced', 'consumer:payment'],
      [2, '    InventoryReserved', order.id, 3, 'PaymentSucceeded', 'consumer:inventory'],
      [3, '      OrderShipped', order.id, 4, 'InventoryReserved', 'consumer:shipping'],
    ]);

    const seed = await bothWays(
      'causation_chain',
      { correlation_id: `demo-${filled.report.run}-seed` },
      { cli: false },
    );
    expect(seed.map((row) => [row.depth, row.event, row.stream_type])).toEqual(
      Array.from({ length: 6 }, () => [0, 'ProductAdded', 'product']),
    );
    expect(seed.map((row) => row.position)).toEqual(
      [...seed.map((row) => row.position as number)].sort((a, b) => a - b),
    );

    // The cancellation came in another request: the placing request's tree stops at the reservation.
    const placed = await bothWays(
      'causation_chain',
      { correlation_id: filled.cancelledReserved.placedBy },
      { cli: false },
    );
    expect(placed.map((row) => row.event)).toEqual([
      'OrderPlaced',
      '  PaymentSucceeded',
      '    InventoryReserved',
    ]);
    const cancelled = await bothWays(
      'causation_chain',
      { correlation_id: filled.cancelledReserved.cancelledBy },
      { cli: false },
    );
    expect(cancelled.map((row) => [row.depth, row.event])).toEqual([
      [0, 'OrderCancelled'],
      [0, 'PaymentRefunded'],
    ]);
  });

  it('events_per_type: per type, the counts the flow produced, by day and by hour over its time range', async () => {
    const expected = expectedEventTypes();
    const totals = (rows: Row[]) => {
      const byType: Record<string, number> = {};
      for (const row of rows)
        byType[row.type as string] = (byType[row.type as string] ?? 0) + (row.events as number);
      return byType;
    };
    expect(totals(await bothWays('events_per_type', { bucket: 'day', ...everything }))).toEqual(expected);

    const { rows: range } = await client.query<{ first: string; after: string }>(
      `select min(occurred_at)::text as first, (max(occurred_at) + interval '1 microsecond')::text as after
       from outbox.events`,
    );
    const hourly = await bothWays(
      'events_per_type',
      { bucket: 'hour', from: range[0]?.first as string, to: range[0]?.after as string },
      { cli: false },
    );
    expect(totals(hourly)).toEqual(expected);
    for (const row of hourly) expect(String(row.bucket_start)).toMatch(/:00:00[+-]\d\d$/);

    expect(
      await bothWays(
        'events_per_type',
        { bucket: 'hour', from: '2000-01-01', to: '2000-01-02' },
        { cli: false },
      ),
    ).toEqual([]);
  });

  it('throughput: every event counted once, the streams the flow touched, peaks within totals', async () => {
    const rows = await bothWays('throughput', { bucket: 'day', ...everything });
    const total = sum(Object.values(expectedEventTypes()));
    expect(sum(rows.map((row) => row.events as number))).toBe(total);
    const streams =
      (await scalar<number>('select count(*)::int from shop.orders')) +
      (await scalar<number>('select count(*)::int from shop.products'));
    if (rows.length === 1) expect(rows[0]?.streams).toBe(streams);
    for (const row of rows) {
      // Each placeOrder and addProduct is a transaction of its own; handlers batch several events per one.
      expect(row.transactions as number).toBeLessThanOrEqual(row.events as number);
      expect(row.peak_events_per_second as number).toBeLessThanOrEqual(row.events as number);
      expect(row.avg_events_per_second).toBe(Math.round(((row.events as number) / 86_400) * 100) / 100);
    }
    expect(sum(rows.map((row) => row.transactions as number))).toBeGreaterThanOrEqual(streams);
  });

  it('busiest_streams: the order with five events first, then the rest by event count', async () => {
    const rows = await bothWays('busiest_streams', { ...everything, limit: '4' });
    expect(rows).toHaveLength(4);
    // Five events: placed, paid, reserved, cancelled, refunded. (A demo cancel that lands on a reserved
    // order, unlikely but possible, would make a second such stream: hence "contains".)
    expect(rows[0]?.events).toBe(5);
    expect(rows).toContainEqual(
      expect.objectContaining({
        stream_type: 'order',
        stream_id: filled.cancelledReserved.id,
        events: 5,
        latest_type: 'PaymentRefunded',
      }),
    );
    for (const row of rows) {
      if (row.stream_type !== 'order') continue;
      // Event counts agree with the business rows: an order's version is its number of events.
      expect(await scalar<number>('select version from shop.orders where id = $1', [row.stream_id])).toBe(
        row.events,
      );
    }
    const counts = rows.map((row) => row.events as number);
    expect(counts).toEqual([...counts].sort((a, b) => b - a));
  });

  it('order_funnel: the numbers of the demo report and of the shop tables', async () => {
    const { report } = filled;
    const placed = await scalar<number>('select count(*)::int from shop.orders');
    const paid = await scalar<number>(`select count(*)::int from shop.payments where status <> 'declined'`);
    expect(placed).toBe(report.placed + 1);
    expect(paid).toBe((report.eventTypes.PaymentSucceeded ?? 0) + 1);
    const reserved = (report.eventTypes.InventoryReserved ?? 0) + 1;
    const expected: Array<[string, number, number | null]> = [
      ['placed', placed, null],
      ['paid', paid, placed],
      ['reserved', reserved, paid],
      ['shipped', report.statuses.SHIPPED ?? 0, reserved],
      ['payment failed', report.statuses.PAYMENT_FAILED ?? 0, null],
      ['rejected (out of stock)', report.statuses.REJECTED ?? 0, null],
      ['cancelled', (report.statuses.CANCELLED ?? 0) + 1, null],
      ['not final yet', 0, null],
    ];
    const pct = (n: number, of: number | null) => (of ? Math.round((1000 * n) / of) / 10 : null);
    const rows = await bothWays('order_funnel', everything);
    expect(rows).toEqual(
      expected.map(([stage, orders, previous]) => ({
        stage,
        orders,
        pct_of_placed: pct(orders, placed),
        pct_of_previous: pct(orders, previous),
      })),
    );
    // Cross-check with the table: final statuses.
    const { rows: statuses } = await client.query<{ status: string; n: number }>(
      'select status, count(*)::int as n from shop.orders group by status',
    );
    const byStatus = Object.fromEntries(statuses.map((row) => [row.status, row.n]));
    expect(rows.find((row) => row.stage === 'shipped')?.orders).toBe(byStatus.SHIPPED ?? 0);
    expect(rows.find((row) => row.stage === 'cancelled')?.orders).toBe(byStatus.CANCELLED ?? 0);
    expect(rows.find((row) => row.stage === 'rejected (out of stock)')?.orders).toBe(byStatus.REJECTED ?? 0);
    expect(rows.find((row) => row.stage === 'payment failed')?.orders).toBe(byStatus.PAYMENT_FAILED ?? 0);

    const none = await bothWays('order_funnel', { from: '2000-01-01', to: '2000-01-02' }, { cli: false });
    expect(none.map((row) => [row.orders, row.pct_of_placed])).toEqual(
      Array.from({ length: 8 }, () => [0, null]),
    );
  });

  it('time_to_ship: percentiles equal to those of the order, payment and shipment rows', async () => {
    const { rows: times } = await client.query<{ paid: string; shipped: string }>(`
      select (extract(epoch from p.created_at - o.created_at) * 1000000)::bigint::text as paid,
             (extract(epoch from s.shipped_at - o.created_at) * 1000000)::bigint::text as shipped
      from shop.orders o
      join shop.payments p on p.order_id = o.id
      join shop.shipments s on s.order_id = o.id`);
    const paid = times.map((row) => Number(row.paid)).sort((a, b) => a - b);
    const shipped = times.map((row) => Number(row.shipped)).sort((a, b) => a - b);
    const rows = await bothWays('time_to_ship', everything);
    expect(rows.map((row) => row.percentile)).toEqual(['p50', 'p90', 'p95', 'p99', 'max']);
    [0.5, 0.9, 0.95, 0.99, 1].forEach((fraction, index) => {
      const row = rows[index] as Row;
      expect(row.shipped_orders).toBe(filled.report.statuses.SHIPPED);
      expect(Math.abs(micros(row.placed_to_paid) - percentileCont(paid, fraction))).toBeLessThanOrEqual(1);
      expect(Math.abs(micros(row.placed_to_shipped) - percentileCont(shipped, fraction))).toBeLessThanOrEqual(
        1,
      );
    });
    for (const column of ['placed_to_paid', 'paid_to_reserved', 'reserved_to_shipped', 'placed_to_shipped']) {
      const values = rows.map((row) => micros(row[column]));
      expect(values, column).toEqual([...values].sort((a, b) => a - b));
    }
    expect(await bothWays('time_to_ship', { from: '2000-01-01', to: '2000-01-02' }, { cli: false })).toEqual(
      [],
    );
  });

  it('order_state: folding the events of an order of each final status gives its row in shop.orders', async () => {
    const { rows: samples } = await client.query<{ id: string }>(`
      select distinct on (status) id from shop.orders order by status, seq`);
    const ids = [...samples.map((row) => row.id), filled.cancelledReserved.id];
    expect(samples.length).toBeGreaterThanOrEqual(3);
    for (const [index, id] of ids.entries()) {
      const steps = await bothWays('order_state', { order_id: id }, { cli: index === 0 });
      const { rows } = await client.query(
        `select o.status, o.version, o.customer_id, o.total_cents::int as total_cents, o.status_reason,
                p.status as payment, s.tracking_number
         from shop.orders o
         left join shop.payments p on p.order_id = o.id
         left join shop.shipments s on s.order_id = o.id
         where o.id = $1`,
        [id],
      );
      const stored = rows[0] as Row;
      expect(steps).toHaveLength(stored.version as number);
      expect(steps.map((step) => step.version)).toEqual(steps.map((_, index) => index + 1));
      const current = steps.at(-1) as Row;
      expect({
        status: current.status,
        version: current.version,
        customer_id: current.customer_id,
        total_cents: current.total_cents,
        status_reason: current.status_reason,
        payment: current.payment,
        tracking_number: current.tracking_number,
      }).toEqual(stored);
    }
    const cancelled = await runQuery(client, query('order_state'), { order_id: filled.cancelledReserved.id });
    expect(toJsonRows(cancelled).map((row) => [row.status, row.payment])).toEqual([
      ['PLACED', null],
      ['PAID', 'approved'],
      ['RESERVED', 'approved'],
      ['CANCELLED', 'approved'],
      ['CANCELLED', 'refunded'],
    ]);
  });

  it('order_state_check: every order rebuilt from the log equals its rows, field by field', async () => {
    const orders = await scalar<number>('select count(*)::int from shop.orders');
    const rows = await bothWays('order_state_check');
    expect(rows.map((row) => row.field)).toEqual([
      'order row and stream both exist',
      'status',
      'version',
      'customer_id',
      'total_cents',
      'status_reason',
      'payment status',
      'tracking number',
    ]);
    for (const row of rows) {
      expect(row, String(row.field)).toMatchObject({
        orders,
        matching: orders,
        mismatched: 0,
        example_order_id: null,
      });
    }
  });

  it('order_timeline: the statuses and plain descriptions of the order cancelled while reserved', async () => {
    const { id, reason } = filled.cancelledReserved;
    const rows = await bothWays('order_timeline', { order_id: id });
    expect(rows.map((row) => [row.type, row.status_after, row.actor])).toEqual([
      ['OrderPlaced', 'PLACED', 'api'],
      ['PaymentSucceeded', 'PAID', 'consumer:payment'],
      ['InventoryReserved', 'RESERVED', 'consumer:inventory'],
      ['OrderCancelled', 'CANCELLED', 'api'],
      ['PaymentRefunded', 'CANCELLED', 'api'],
    ]);
    // 2 keyboards at $89.00.
    expect(rows.map((row) => row.detail)).toEqual([
      '2 item(s), total 178.00',
      'paid 178.00',
      `reserved KEYB-${filled.report.run} x2`,
      `${reason} (was RESERVED)`,
      'refunded 178.00 (CANCELLED)',
    ]);
    expect(rows[0]?.since_placed).toBe('00:00:00');
  });

  it('product_sales: units and revenue per product equal the order lines of the shipped orders', async () => {
    const { rows: expected } = await client.query(`
      select p.sku, p.name, count(o.id)::int as orders, coalesce(sum(l.quantity), 0)::int as units,
             coalesce(sum(l.quantity * l.unit_price_cents), 0)::int as revenue_cents
      from shop.products p
      left join shop.order_lines l on l.sku = p.sku
        and exists (select from shop.orders o where o.id = l.order_id and o.status = 'SHIPPED')
      left join shop.orders o on o.id = l.order_id
      group by p.sku, p.name
      order by revenue_cents desc, p.sku`);
    const rows = await bothWays('product_sales', everything);
    expect(rows.map(({ revenue: _, ...row }) => row)).toEqual(expected);
    expect(rows).toHaveLength(6);
    for (const row of rows) {
      const cents = row.revenue_cents as number;
      expect(row.revenue).toBe(
        `${Math.floor(cents / 100).toLocaleString('en-US')}.${String(cents % 100).padStart(2, '0')}`,
      );
    }
  });

  it('consumer_lag: every consumer caught up, handled counts as delivered, one dead letter', async () => {
    const types = expectedEventTypes();
    const orderEvents = sum(
      [
        'OrderPlaced',
        'PaymentSucceeded',
        'PaymentFailed',
        'InventoryReserved',
        'OrderRejected',
        'PaymentRefunded',
        'OrderShipped',
        'OrderCancelled',
      ].map((type) => types[type] ?? 0),
    );
    const rows = await bothWays('consumer_lag');
    const common = {
      status: 'active',
      partitions: 8,
      lag: 0,
      oldest_pending_age: null,
      retrying: 0,
      blocked: 0,
    };
    expect(rows.map(({ last_progress_at: _, ...row }) => row)).toEqual([
      { consumer: CATALOGUE_SYNC, ...common, dead_letters: 1, handled: (types.ProductAdded ?? 0) - 1 },
      { consumer: 'inventory', ...common, dead_letters: 0, handled: types.PaymentSucceeded },
      { consumer: 'notifications', ...common, dead_letters: 0, handled: orderEvents },
      { consumer: 'payment', ...common, dead_letters: 0, handled: types.OrderPlaced },
      { consumer: 'shipping', ...common, dead_letters: 0, handled: types.InventoryReserved },
    ]);
  });

  it('dead_letters: the event the failing consumer gave up on, with its last error', async () => {
    const rows = await bothWays('dead_letters');
    expect(rows).toEqual([
      expect.objectContaining({
        consumer: CATALOGUE_SYNC,
        state: 'open',
        event_type: 'ProductAdded',
        stream_type: 'product',
        stream_id: filled.gpuSku,
        stream_version: 1,
        attempts: 3,
        last_error: catalogueSyncError(filled.gpuSku),
      }),
    ]);
  });

  it('integrity_checks: all hold on the demo data', async () => {
    const rows = await bothWays('integrity_checks');
    expect(rows).toHaveLength(11);
    for (const row of rows)
      expect(row, String(row.invariant)).toMatchObject({ violations: 0, example: null });
  });

  it('destination_attempts: the attempts of one destination, newest first, limited', async () => {
    // A destination made through the engine's admin API (never delivering here: no engine runs), and two
    // attempts as the attempt log writes them.
    await createDestination(
      filled.database.db,
      {
        name: 'crm-hook',
        kind: 'webhook',
        url: 'https://crm.example.com/events',
        filter: { types: ['OrderPlaced'] },
      },
      // No DNS look-up in a test: the address check is not what this is about.
      { addressPolicy: { allowPrivate: true } },
    );
    await client.query(
      `insert into outbox.destination_attempts (destination, event_id, attempt, outcome, status, duration_ms, error, response_snippet, at)
       values ('crm-hook', gen_random_uuid(), 1, 'failed', 503, 12, 'HTTP 503: busy', 'busy', now() - interval '1 minute'),
              ('crm-hook', gen_random_uuid(), 2, 'delivered', 204, 8, null, '', now())`,
    );
    const rows = await bothWays('destination_attempts', { destination: 'crm-hook', limit: '1' });
    expect(rows).toEqual([
      expect.objectContaining({ attempt: 2, outcome: 'delivered', status: 204, error: null }),
    ]);
    const both = await bothWays(
      'destination_attempts',
      { destination: 'crm-hook', limit: '10' },
      { cli: false },
    );
    expect(both.map((row) => row.outcome)).toEqual(['delivered', 'failed']);
  });

  it('every file of sql/ ran both ways above', () => {
    expect([...exercised].sort()).toEqual(catalogue.map((entry) => entry.name));
  });
});

describe('the checks find what is wrong', () => {
  it('integrity_checks and order_state_check report broken rows (made by hand in a rolled-back transaction)', async () => {
    const { id } = filled.cancelledReserved;
    const { rows: shipped } = await client.query<{ id: string }>(
      `select order_id::text as id from shop.shipments order by order_id limit 1`,
    );
    const shippedId = shipped[0]?.id as string;
    await client.query('begin');
    try {
      await client.query(`
        insert into shop.orders (id, customer_id, status, total_cents, version, idempotency_key)
        values ('00000000-0000-4000-8000-000000000001', 'nobody', 'PLACED', 0, 1, 'sql-test-orphan')`);
      await client.query('update shop.products set stock = stock + 1 where sku = $1', [filled.gpuSku]);
      await client.query(
        `insert into outbox.events (id, log_xid, stream_type, stream_id, stream_version, type, payload)
         values (gen_random_uuid(), pg_current_xact_id(), 'order', $1, 7, 'OrderShipped', '{}')`,
        [id],
      );
      await client.query('delete from shop.shipments where order_id = $1', [shippedId]);
      await client.query(`update shop.orders set status = 'PAID' where id = $1`, [shippedId]);

      const integrity = toJsonRows(await runQuery(client, query('integrity_checks'), {}));
      const found = Object.fromEntries(
        integrity.map((row) => [row.invariant, [row.violations, row.example]]),
      );
      expect(found).toEqual({
        'stream versions are 1..n without gaps': [1, `order/${id}`],
        'log order agrees with version order in every stream': [0, null],
        'every order event has its order row': [0, null],
        'every product event has its product row': [0, null],
        'every payment event has its payment row': [0, null],
        'every OrderShipped has its shipment row': [2, [id, shippedId].sort()[0]],
        'every order has its OrderPlaced (version 1)': [1, '00000000-0000-4000-8000-000000000001'],
        'every payment row has its payment event': [0, null],
        'every shipment row has its OrderShipped': [0, null],
        'order versions equal their stream versions': [1, '00000000-0000-4000-8000-000000000001'],
        'product stock equals what its events add up to': [1, filled.gpuSku],
      });

      const state = toJsonRows(await runQuery(client, query('order_state_check'), {}));
      const mismatched = Object.fromEntries(
        state.map((row) => [row.field, [row.mismatched, row.example_order_id]]),
      );
      expect(mismatched).toMatchObject({
        'order row and stream both exist': [1, '00000000-0000-4000-8000-000000000001'],
        status: [2, [shippedId, '00000000-0000-4000-8000-000000000001'].sort()[0]],
        'tracking number': [1, shippedId],
      });
    } finally {
      await client.query('rollback');
    }
  });
});

describe('variables are data', () => {
  const ordersNow = () => scalar<number>('select count(*)::int from shop.orders');

  it('quotes, semicolons and SQL in a --var value match nothing and run nothing', async () => {
    const before = await ordersNow();
    const { id } = filled.cancelledReserved;
    const hostile = [
      `${id}' or '1'='1`,
      `x'; drop table shop.orders; --`,
      `x"; delete from shop.orders; select '`,
      `$1 :'stream_type' \\' ; select pg_sleep(10)`,
    ];
    const results = await Promise.all(
      hostile.map((value) =>
        postboxSql(['stream_history', '--var', 'stream_type=order', '--var', `stream_id=${value}`]),
      ),
    );
    results.forEach((result, index) => {
      expect(result.code, hostile[index]).toBe(0);
      expect(result.stdout, hostile[index]).toMatch(/\(0 rows\)\n\n$/);
    });
    // The same id, clean, is found: the values above were compared as whole strings.
    const clean = await postboxSql([
      'stream_history',
      '--var',
      'stream_type=order',
      '--var',
      `stream_id=${id}`,
    ]);
    expect(clean.stdout).toMatch(/\(5 rows\)/);
    expect(await ordersNow()).toBe(before);
  });

  it('a value that is not of the type a cast asks for is an error, not SQL', async () => {
    const before = await ordersNow();
    const result = await postboxSql([
      'busiest_streams',
      ...varArgs({ ...everything, limit: '1; delete from shop.orders' }),
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/invalid input syntax for type integer: "1; delete from shop.orders"/);
    expect(await ordersNow()).toBe(before);
  });

  it.skipIf(!psqlPath)("psql quotes :'name' values the same way", async () => {
    const file = query('stream_history').file;
    const output = await runPsql(filled.database.url, file, {
      stream_type: 'order',
      stream_id: `${filled.cancelledReserved.id}' or '1'='1`,
    });
    expect(output).toMatch(/\(0 rows\)\n\n$/);
  });

  it('postbox sql runs in a read-only transaction', async () => {
    // A query file that writes (kept out of sql/: a temporary directory of its own).
    const dir = await makeTempDir('postbox-sql-');
    try {
      await fs.writeFile(
        path.join(dir, 'sneaky.sql'),
        `-- A query that writes.\n--\n-- It should not be able to.\n--\n-- Parameters:\n--   :'customer'  who\n--\n` +
          `-- Example:\n--   postbox sql sneaky --var customer=x\n\n` +
          `update shop.orders set customer_id = :'customer' returning id;\n`,
      );
      const result = await postboxSql(['sneaky', '--dir', dir, '--var', 'customer=mallory']);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/read-only transaction/);
      expect(
        await scalar<number>(`select count(*)::int from shop.orders where customer_id = 'mallory'`),
      ).toBe(0);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('postbox sql usage errors', () => {
  it('names the missing variables with their descriptions', async () => {
    const result = await postboxSql(['stream_history', '--var', 'stream_type=order']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/stream_history needs --var stream_id=…/);
    expect(result.stderr).toMatch(/stream_id\s+the stream id: an order id \(uuid\) or a product SKU/);
  });

  it('refuses an unknown variable, an unknown query and an unknown format', async () => {
    const unknownVariable = await postboxSql(['integrity_checks', '--var', 'limit=3']);
    expect(unknownVariable.code).toBe(1);
    expect(unknownVariable.stderr).toMatch(/unknown variable limit: this query takes no variables/);
    const unknownQuery = await postboxSql(['nope']);
    expect(unknownQuery.code).toBe(1);
    expect(unknownQuery.stderr).toMatch(/no query named nope .*there are: busiest_streams, causation_chain/);
    const badFormat = await postboxSql(['integrity_checks', '--format', 'xml']);
    expect(badFormat.code).toBe(1);
    expect(badFormat.stderr).toMatch(/must be one of table, json, csv/);
  });

  it('csv and table output match psql for the same query', async () => {
    const csv = await postboxSql(['order_funnel', ...varArgs(everything), '--format', 'csv']);
    expect(csv.code).toBe(0);
    expect(csv.stdout.split('\n')[0]).toBe('stage,orders,pct_of_placed,pct_of_previous');
    if (psqlPath) {
      expect(csv.stdout).toBe(
        await runPsql(filled.database.url, path.join(queriesDir, 'order_funnel.sql'), everything, {
          csv: true,
        }),
      );
      const table = await postboxSql(['order_funnel', ...varArgs(everything)]);
      expect(table.stdout).toBe(
        await runPsql(filled.database.url, path.join(queriesDir, 'order_funnel.sql'), everything),
      );
    }
  });
});
