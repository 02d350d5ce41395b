import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/auth/api-keys.ts';
import { SERVICE_LINES } from '../../src/db/migration-lines.ts';
import { migrate } from '../../src/engine/db/migrate.ts';
import { placeOrder } from '../../src/shop/order.service.ts';
import { readQueryCatalogue } from '../../src/sql/query-catalogue.ts';
import { runQuery } from '../../src/sql/run-query.ts';
import { childEnv, cliEntry, runNode } from '../foundation/processes.ts';
import { createTestDatabase, withAdmin } from '../helpers/db.ts';
import {
  type RunningShop,
  seedProducts,
  startShop,
  waitForAllFinal,
  waitForQuiet,
} from '../shop/shop-fixtures.ts';
import { psqlPath, runPsql } from './sql-fixtures.ts';

// An analyst's login, made the way the README says: create role … login password … in role postbox_reader.
// Roles are cluster-wide: the name is unique to this run, and the role is dropped at the end.
const login = `postbox_test_analyst_${randomBytes(4).toString('hex')}`;
const password = randomBytes(12).toString('hex');

let shop: RunningShop;
let readerUrl: string;
let reader: pg.Client;
let orderIds: string[];

beforeAll(async () => {
  shop = await startShop();
  await seedProducts(shop.db, [
    { sku: 'PEN', priceCents: 150, stock: 100 },
    { sku: 'INK', priceCents: 900, stock: 1 },
  ]);
  const placed = [];
  for (const [index, lines] of [
    [{ sku: 'PEN', quantity: 3 }],
    [{ sku: 'INK', quantity: 1 }],
    [{ sku: 'INK', quantity: 1 }], // out of stock by then: rejected
  ].entries()) {
    placed.push(
      await placeOrder(
        shop.db,
        { customerId: 'c1', idempotencyKey: `reader-${index}`, lines },
        { correlationId: `reader-${index}` },
      ),
    );
  }
  orderIds = placed.map((result) => result.order.id);
  await waitForAllFinal(shop.db, orderIds);
  await waitForQuiet(shop.db);
  await createApiKey(shop.db, { name: 'ops', scopes: ['admin'] });

  await withAdmin((admin) =>
    admin.query(`create role ${login} login password '${password}' in role postbox_reader`),
  );
  const url = new URL(shop.database.url);
  url.username = login;
  url.password = password;
  readerUrl = url.toString();
  reader = new pg.Client({ connectionString: readerUrl });
  await reader.connect();
});

afterAll(async () => {
  await reader?.end();
  await shop?.stop();
  await withAdmin((admin) => admin.query(`drop role if exists ${login}`));
});

/** The SQLSTATE `text` fails with as the reader (undefined when it succeeds). */
async function failureOf(text: string): Promise<string | undefined> {
  return reader.query(text).then(
    () => undefined,
    (error: { code?: string }) => error.code ?? 'no code',
  );
}

describe('postbox_reader', () => {
  it('is a NOLOGIN role that can be granted to logins', async () => {
    const { rows } = await shop.database.pool.query(
      `select rolcanlogin, rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = 'postbox_reader'`,
    );
    expect(rows).toEqual([{ rolcanlogin: false, rolsuper: false, rolcreatedb: false, rolcreaterole: false }]);
  });

  it('lets a member read the log, the shop and the views', async () => {
    const count = async (relation: string) =>
      Number((await reader.query(`select count(*) as n from ${relation}`)).rows[0]?.n);
    expect(await count('outbox.events')).toBeGreaterThanOrEqual(3 + 2);
    expect(await count('shop.orders')).toBe(3);
    expect(await count('shop.order_lines')).toBe(3);
    expect(await count('outbox.stream_heads')).toBe(3 + 2);
    expect(await count('shop.order_timeline')).toBeGreaterThanOrEqual(3 * 2);
    expect(await count('outbox.consumer_lag')).toBe(4 * 8);
    expect(await count('outbox.dead_letters')).toBe(0);
  });

  it('lets a member run every query of sql/', async () => {
    const values: Record<string, string> = {
      stream_type: 'order',
      stream_id: orderIds[0] as string,
      order_id: orderIds[2] as string,
      correlation_id: 'reader-0',
      bucket: 'hour',
      from: '-infinity',
      to: 'infinity',
      limit: '5',
    };
    for (const query of await readQueryCatalogue()) {
      const variables = Object.fromEntries(
        query.parameters.map(({ name }) => [name, values[name] as string]),
      );
      await reader.query('begin transaction read only');
      try {
        const result = await runQuery(reader, query, variables);
        expect(result.columns.length, query.name).toBeGreaterThan(0);
      } finally {
        await reader.query('rollback');
      }
    }
    // Which of the two INK orders got the last one depends on delivery order; the other was rejected.
    const { rows } = await shop.database.pool.query(`select id from shop.orders where status = 'REJECTED'`);
    expect(rows).toHaveLength(1);
    const orderState = (await readQueryCatalogue()).find((query) => query.name === 'order_state')!;
    const state = await runQuery(reader, orderState, { order_id: rows[0]?.id });
    expect(state.rows.map((row) => row[2])).toEqual(['PLACED', 'PAID', 'REJECTED', 'REJECTED']);
  });

  it('cannot insert, update, delete, truncate or create anything', async () => {
    const [order] = orderIds;
    expect(
      await failureOf(
        `insert into outbox.events (id, log_xid, stream_type, stream_id, stream_version, type, payload)
         values (gen_random_uuid(), pg_current_xact_id(), 'order', 'x', 1, 'OrderPlaced', '{}')`,
      ),
    ).toBe('42501');
    expect(await failureOf(`update shop.orders set status = 'SHIPPED' where id = '${order}'`)).toBe('42501');
    expect(await failureOf(`delete from shop.products where sku = 'PEN'`)).toBe('42501');
    expect(await failureOf(`delete from outbox.dead_letters`)).toBe('42501');
    expect(await failureOf(`update outbox.consumer_partitions set checkpoint_position = 0`)).toBe('42501');
    expect(await failureOf('truncate shop.notifications')).toBe('42501');
    expect(await failureOf('create table outbox.mine (x int)')).toBe('42501');
    expect(await failureOf('create table shop.mine (x int)')).toBe('42501');
    // Nothing changed.
    const { rows } = await shop.database.pool.query(`select status from shop.orders where id = $1`, [order]);
    expect(rows[0]?.status).toBe('SHIPPED');
  });

  it('cannot read outside outbox and shop: not the API key hashes, migrations or the job queue', async () => {
    expect(await failureOf('select secret_sha256 from postbox.api_keys')).toBe('42501');
    expect(await failureOf('select * from postbox.migrations')).toBe('42501');
    // Destinations are readable, their signing secrets and header values are not.
    expect(await failureOf('select signing_secret from outbox.destination_secrets')).toBe('42501');
    expect(await failureOf('select name, settings from outbox.destinations')).toBeUndefined();
    expect(await failureOf('select * from graphile_worker.jobs')).toBe('42501');
    expect(await failureOf('select * from graphile_worker._private_jobs')).toBe('42501');
    const { rows } = await reader.query<{ schema: string; usage: boolean }>(`
      select nspname as schema, has_schema_privilege(nspname, 'usage') as usage
      from pg_namespace
      where nspname in ('outbox', 'shop', 'postbox', 'graphile_worker')
      order by nspname`);
    expect(Object.fromEntries(rows.map((row) => [row.schema, row.usage]))).toEqual({
      graphile_worker: false,
      outbox: true,
      postbox: false,
      shop: true,
    });
  });

  it('reads tables added to outbox and shop later, by default privileges', async () => {
    await shop.database.pool.query(
      'create table shop.added_later (x int); insert into shop.added_later values (1)',
    );
    try {
      expect((await reader.query('select x from shop.added_later')).rows).toEqual([{ x: 1 }]);
      expect(await failureOf('insert into shop.added_later values (2)')).toBe('42501');
    } finally {
      await shop.database.pool.query('drop table shop.added_later');
    }
  });

  it('is enough for postbox sql and for psql', async () => {
    const cli = await runNode(
      [cliEntry, 'sql', 'integrity_checks', '--format', 'csv'],
      childEnv({ DATABASE_URL: readerUrl }),
    );
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(cli.stdout.split('\n').filter((line) => /,0,$/.test(line))).toHaveLength(11);
    if (psqlPath) {
      const catalogue = await readQueryCatalogue();
      const funnel = catalogue.find((query) => query.name === 'order_funnel')!;
      const output = await runPsql(
        readerUrl,
        funnel.file,
        { from: '-infinity', to: 'infinity' },
        { csv: true },
      );
      expect(output.split('\n').slice(0, 5)).toEqual([
        'stage,orders,pct_of_placed,pct_of_previous',
        'placed,3,100.0,',
        'paid,3,100.0,100.0',
        'reserved,2,66.7,66.7',
        'shipped,2,66.7,100.0',
      ]);
    }
  });
});

describe('the migration creating it', () => {
  it('runs in several databases of one server at once, each granting to the one role', async () => {
    const databases = await Promise.all([
      createTestDatabase({ migrated: false, poolSize: 4 }),
      createTestDatabase({ migrated: false, poolSize: 4 }),
    ]);
    try {
      await Promise.all(databases.map((database) => migrate({ pool: database.pool, lines: SERVICE_LINES })));
      for (const database of databases) {
        const { rows } = await database.pool.query(`
          select has_table_privilege('postbox_reader', 'outbox.events', 'select') as events,
                 has_table_privilege('postbox_reader', 'outbox.events', 'insert') as insert_events,
                 has_table_privilege('postbox_reader', 'shop.order_timeline', 'select') as timeline,
                 has_schema_privilege('postbox_reader', 'postbox', 'usage') as postbox,
                 has_schema_privilege('postbox_reader', 'graphile_worker', 'usage') as worker`);
        expect(rows[0]).toEqual({
          events: true,
          insert_events: false,
          timeline: true,
          postbox: false,
          worker: false,
        });
      }
    } finally {
      await Promise.all(databases.map((database) => database.drop()));
    }
  });
});
