import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '../../src/engine/db/database.ts';
import { createPool } from '../../src/engine/db/pool.ts';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { checkReadiness } from '../../src/observability/health.ts';
import { captureLogs } from '../hardening/hardening-fixtures.ts';

/** A port nothing listens on: the database "is down". */
async function deadPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

let port: number;
const pools: Array<ReturnType<typeof createPool>> = [];
const servers: ApiServer[] = [];
const logs = captureLogs();

async function serve(authEnabled: boolean): Promise<ApiServer> {
  const pool = createPool({
    connectionString: `postgres://postbox@127.0.0.1:${port}/postbox`,
    logger: silentLogger,
  });
  pools.push(pool);
  const server = await startApiServer({
    db: createDb(pool),
    logger: logs.logger,
    auth: { enabled: authEnabled },
    host: '127.0.0.1',
    port: 0,
    readiness: () => checkReadiness({ pool, workersRunning: undefined, timeoutMs: 3000 }),
  });
  servers.push(server);
  return server;
}

beforeAll(async () => {
  port = await deadPort();
});

afterAll(async () => {
  for (const server of servers) await server.close();
  for (const pool of pools) await pool.end();
});

describe('during a database outage', () => {
  it('/readyz answers 503 with a generic reason; the cause goes to the log', async () => {
    const server = await serve(false);
    const response = await fetch(server.url.replace(/\/graphql$/, '/readyz'));
    const text = await response.text();
    expect(response.status).toBe(503);
    expect(text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
    expect(text).not.toContain(String(port));
    expect(JSON.stringify(logs.lines())).toContain('ECONNREFUSED');
  });

  it('a GraphQL request gets 503 SERVICE_UNAVAILABLE, not 500 "Unexpected error."', async () => {
    const server = await serve(false);
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ products { sku } }' }),
    });
    const body = (await response.json()) as {
      errors?: Array<{ message: string; extensions?: { code?: string } }>;
    };
    expect(response.status).toBe(503);
    expect(body.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
    expect(JSON.stringify(body)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
  });

  it('with auth on, checking an API key against the unreachable database is 503 too', async () => {
    const server = await serve(true);
    const response = await fetch(server.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer pbx_abcdefghij_${'A'.repeat(43)}`,
      },
      body: JSON.stringify({ query: '{ products { sku } }' }),
    });
    const body = (await response.json()) as { errors?: Array<{ extensions?: { code?: string } }> };
    expect(response.status).toBe(503);
    expect(body.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');
    expect(JSON.stringify(body)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
  });
});
