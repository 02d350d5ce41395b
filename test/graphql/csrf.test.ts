import { request } from 'node:http';
import { auditServer } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { count } from '../shop/shop-fixtures.ts';

let database: TestDatabase;
let server: ApiServer;

beforeAll(async () => {
  database = await createTestDatabase();
  // Auth off: the embedded database's default, where a foreign page could otherwise act as admin.
  server = await startApiServer({
    db: database.db,
    logger: silentLogger,
    auth: { enabled: false },
    host: '127.0.0.1',
    port: 0,
    rateLimitPerMinute: 100_000,
    // The audit's variables check queries `__type(name: $name)`.
    introspection: true,
  });
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

const MUTATION =
  'mutation { addProduct(input: { sku: "CSRF-1", name: "x", priceCents: 1, stock: 1 }) { __typename } }';

/** A raw HTTP request (node:http lets a test set Host, as a rebinding page's browser would send it). */
function raw(options: {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
}): Promise<{ status: number; body: string }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: options.path ?? url.pathname,
        method: options.method ?? 'POST',
        headers: options.headers ?? {},
      },
      (response) => {
        let body = '';
        response.on('data', (chunk) => {
          body += chunk;
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('cross-site requests with auth off', () => {
  it('form-encoded, multipart and text/plain POSTs (no preflight) are refused and write nothing', async () => {
    const boundary = 'xyz';
    const attempts = [
      { 'content-type': 'application/x-www-form-urlencoded', body: `query=${encodeURIComponent(MUTATION)}` },
      {
        'content-type': `multipart/form-data; boundary=${boundary}`,
        body: `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${JSON.stringify({ query: MUTATION })}\r\n--${boundary}--\r\n`,
      },
      { 'content-type': 'text/plain', body: JSON.stringify({ query: MUTATION }) },
    ];
    for (const { body, ...headers } of attempts) {
      const response = await raw({ headers: { ...headers, origin: 'https://evil.example' }, body });
      expect(response.status, headers['content-type']).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
    }
    expect(await count(database.db, 'shop.products')).toBe(0);
  });

  it('a GET query needs the CSRF header', async () => {
    const path = `/graphql?query=${encodeURIComponent('{ logHead }')}`;
    expect((await raw({ method: 'GET', path, headers: { accept: 'application/json' } })).status).toBe(403);
    const allowed = await raw({
      method: 'GET',
      path,
      headers: { accept: 'application/json', 'x-graphql-yoga-csrf': '1' },
    });
    expect(allowed.status).toBe(200);
  });

  it('a request for a foreign Host (DNS rebinding) is refused; loopback names are served', async () => {
    const json = { 'content-type': 'application/json' };
    const body = JSON.stringify({ query: '{ logHead }' });
    const rebound = await raw({ headers: { ...json, host: 'rebind.evil.example' }, body });
    expect(rebound.status).toBe(421);
    expect(rebound.body).not.toContain('logHead');
    const port = new URL(server.url).port;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost']) {
      expect((await raw({ headers: { ...json, host }, body })).status, host).toBe(200);
    }
    expect(
      (await raw({ method: 'GET', path: '/metrics', headers: { host: 'rebind.evil.example' } })).status,
    ).toBe(421);
  });

  it('a WebSocket from a foreign origin or for a foreign Host is refused', async () => {
    const outcome = (headers: Record<string, string>) =>
      new Promise<string>((resolve) => {
        const socket = new WebSocket(server.url.replace(/^http/, 'ws'), 'graphql-transport-ws', { headers });
        socket.once('open', () => {
          socket.close();
          resolve('open');
        });
        socket.once('unexpected-response', (_req, response) => resolve(`refused ${response.statusCode}`));
        socket.once('error', () => resolve('error'));
      });
    expect(await outcome({ origin: 'https://evil.example' })).toMatch(/^refused 403/);
    expect(await outcome({ host: 'rebind.evil.example' })).toMatch(/^refused 421/);
    expect(await outcome({ origin: `http://localhost:${new URL(server.url).port}` })).toBe('open');
    expect(await outcome({})).toBe('open');
  });
});

describe('GraphQL over HTTP', () => {
  it('the graphql-http audit has no MUST failure', async () => {
    const results = await auditServer({ url: server.url, fetchFn: fetch });
    const failedMusts = results.filter((result) => result.status === 'error');
    expect(
      failedMusts.map((result) => `${result.id} ${result.name}: ${'reason' in result ? result.reason : ''}`),
    ).toEqual([]);
  });
});
