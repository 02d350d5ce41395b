import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHorizonHolders } from '../../src/engine/index.ts';
import type { GraphqlApi } from '../../src/graphql/yoga.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { childEnv, cliEntry, runNode } from '../foundation/processes.ts';
import { createTestApi, gql } from '../graphql/graphql-fixtures.ts';
import { bearer, createTestKeys, type TestKeys } from '../hardening/hardening-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

// Every reader of the log waits for the oldest open write transaction: operators must be able to find it.

const MARKER = 'horizon_marker_42';

let t: TestDatabase;
let holder: pg.Client;
let holderPid: number;
let api: GraphqlApi;
let keys: TestKeys;

beforeAll(async () => {
  t = await createTestDatabase();
  keys = await createTestKeys(t.db);
  api = createTestApi(t.db, t.url, { auth: { enabled: true } });
  // A write transaction left open, its last statement recognisable.
  holder = new pg.Client({ connectionString: t.url, application_name: 'stuck-job' });
  await holder.connect();
  holderPid = (await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid as number;
  await holder.query('begin');
  await holder.query(`select pg_current_xact_id(), '${MARKER}'`);
});
afterAll(async () => {
  await holder?.query('rollback').catch(() => undefined);
  await holder?.end();
  await api?.close();
  await t?.drop();
});

describe('what holds the read horizon back', () => {
  it('the engine names the open write transactions, oldest first: pid, age, query', async () => {
    const holders = await readHorizonHolders(t.db);
    const mine = holders.find((row) => row.pid === holderPid);
    expect(mine).toMatchObject({ applicationName: 'stuck-job', state: 'idle in transaction' });
    expect(mine?.query).toContain(MARKER);
    expect(mine?.ageMs).toBeGreaterThanOrEqual(0);
    expect(holders[0]?.holdsHorizon).toBe(true);
    expect(holders.slice(1).every((row) => !row.holdsHorizon)).toBe(true);
  });

  it('/metrics shows its age and pid, never its query', async () => {
    const text = await createMetrics(t.db, { defaultMetrics: false }).render();
    const value = (name: string) =>
      Number(
        text
          .split('\n')
          .find((line) => line.startsWith(`${name} `))
          ?.split(' ')[1],
      );
    expect(value('postbox_horizon_holder_age_seconds')).toBeGreaterThan(0);
    expect(value('postbox_horizon_holder_pid')).toBeGreaterThan(0);
    expect(text).not.toContain(MARKER);
  });

  it('the CLI prints it', async () => {
    const result = await runNode(
      [cliEntry, 'consumers', 'horizon', '--json'],
      childEnv({ DATABASE_URL: t.url, LOG_LEVEL: 'error' }),
    );
    expect(result.code).toBe(0);
    const rows = JSON.parse(result.stdout) as Array<{ pid: number; query: string }>;
    expect(rows.find((row) => row.pid === holderPid)?.query).toContain(MARKER);
  });

  it('GraphQL shows it to the admin scope only', async () => {
    const query = '{ horizonHolders { pid ageMs applicationName query holdsHorizon } }';
    const admin = await gql<{ horizonHolders: Array<{ pid: number; query: string }> }>(
      api,
      query,
      {},
      bearer(keys.admin),
    );
    expect(admin.body.errors).toBeUndefined();
    expect(admin.body.data?.horizonHolders.find((row) => row.pid === holderPid)?.query).toContain(MARKER);
    const reader = await gql(api, query, {}, bearer(keys.reader));
    expect(reader.status).toBe(403);
    const anonymous = await gql(api, query);
    expect(anonymous.status).not.toBe(200);
  });
});
