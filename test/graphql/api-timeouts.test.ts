import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { silentLogger } from '../../src/logger.ts';
import { type Service, startService } from '../../src/main.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

// A query stuck behind a lock must not hold its client (or an API connection) until the lock goes away:
// the API pool's statement_timeout cancels it in the database, and the execution deadline answers the
// client even when the database is not what is slow. Both are shown while the lock is still held, so
// nothing here depends on how fast the machine is.

let database: TestDatabase;
const services: Service[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  for (const service of services) await service.stop();
  await database?.drop();
});

async function start(env: Record<string, string>): Promise<string> {
  const config = loadConfig({
    DATABASE_URL: database.url,
    POSTBOX_AUTH: 'false',
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    POSTBOX_POOL_SIZE: '4',
    POSTBOX_API_POOL_SIZE: '3',
    ...env,
  });
  const service = await startService({ ...config, runWorkers: false }, silentLogger);
  services.push(service);
  return service.apiUrl as string;
}

async function graphql(
  url: string,
  query: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Runs `work` while another session holds an ACCESS EXCLUSIVE lock on shop.orders. */
async function whileOrdersLocked<T>(work: () => Promise<T>): Promise<T> {
  const locker = new pg.Client({ connectionString: database.url });
  await locker.connect();
  try {
    await locker.query('begin');
    await locker.query('lock table shop.orders in access exclusive mode');
    return await work();
  } finally {
    await locker.query('rollback').catch(() => undefined);
    await locker.end();
  }
}

const ORDERS = '{ orders(first: 5) { edges { node { id status } } } }';

describe('API queries are bounded', () => {
  it("statement_timeout cancels a query stuck on a lock, the client gets an error, /healthz answers, and the API's pool is free again", async () => {
    const url = await start({
      POSTBOX_API_STATEMENT_TIMEOUT_MS: '300',
      POSTBOX_API_EXECUTION_TIMEOUT_MS: '60000',
    });
    const answer = await whileOrdersLocked(async () => {
      const pending = graphql(url, ORDERS);
      const health = await fetch(new URL('/healthz', url));
      expect(health.status).toBe(200);
      // A safety cap only: without the timeout this would wait until the lock is released.
      return Promise.race([
        pending,
        new Promise<'still waiting'>((resolve) => setTimeout(() => resolve('still waiting'), 30_000)),
      ]);
    });
    expect(answer).not.toBe('still waiting');
    const { body } = answer as { body: { data?: unknown; errors?: Array<{ message: string }> } };
    expect(body.errors?.length).toBeGreaterThan(0);
    // Once the lock is gone the same query works: the cancelled query gave its connection back.
    const after = await graphql(url, ORDERS);
    expect(after.body).toEqual({ data: { orders: { edges: [] } } });
  });

  it('the execution deadline answers DEADLINE_EXCEEDED (503) while the query is still waiting in the database', async () => {
    const url = await start({
      POSTBOX_API_STATEMENT_TIMEOUT_MS: '60000',
      POSTBOX_API_EXECUTION_TIMEOUT_MS: '300',
    });
    const answer = await whileOrdersLocked(() =>
      Promise.race([
        graphql(url, ORDERS),
        new Promise<'still waiting'>((resolve) => setTimeout(() => resolve('still waiting'), 30_000)),
      ]),
    );
    expect(answer).not.toBe('still waiting');
    const { status, body } = answer as {
      status: number;
      body: { errors?: Array<{ extensions?: { code?: string } }> };
    };
    expect(status).toBe(503);
    expect(body.errors?.[0]?.extensions?.code).toBe('DEADLINE_EXCEEDED');
  });
});
