import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '../../src/engine/db/database.ts';
import { createPool } from '../../src/engine/db/pool.ts';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import type { GraphqlApi } from '../../src/graphql/yoga.ts';
import { silentLogger } from '../../src/logger.ts';
import { addProduct } from '../../src/shop/product.service.ts';
import { createTestApi, gql, gqlData, PLACE_ORDER } from '../graphql/graphql-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import {
  bearer,
  captureLogs,
  createTestKeys,
  footprint,
  type TestKeys,
  wsClient,
  wsOnce,
} from './hardening-fixtures.ts';

let database: TestDatabase;
let api: GraphqlApi;
let production: GraphqlApi;
let keys: TestKeys;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  database = await createTestDatabase();
  await addProduct(database.db, { sku: 'L-KEYB', name: 'Keyboard', priceCents: 8_900, stock: 1000 });
  keys = await createTestKeys(database.db);
  api = createTestApi(database.db, database.url);
  production = createTestApi(database.db, database.url, { development: false, introspection: false });
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await production?.close();
  await api?.close();
  await database?.drop();
});

const messages = (response: { body: { errors?: Array<{ message: string }> } }) =>
  (response.body.errors ?? []).map((error) => error.message).join('\n');

describe('document limits (graphql-armor): refused with a clear error, nothing written', () => {
  it('too deep', async () => {
    let selection = 'sku';
    for (let i = 0; i < 11; i++) selection = `products { ${selection} }`;
    const response = await gql(api, `{ ${selection} }`);
    expect(messages(response)).toMatch(/Query depth limit of 10 exceeded/);
    expect(response.body.data ?? null).toBeNull();
  });

  it('too many aliases: 31 placeOrder mutations in one document', async () => {
    const before = await footprint(database.db);
    const aliases = Array.from(
      { length: 31 },
      (_, i) =>
        `o${i}: placeOrder(input: { customerId: "x", idempotencyKey: "alias-${i}", lines: [{ sku: "L-KEYB", quantity: 1 }] }) { __typename }`,
    );
    const response = await gql(api, `mutation { ${aliases.join('\n')} }`);
    expect(messages(response)).toMatch(/Aliases limit of 30 exceeded, found 31/);
    expect(response.body.data ?? null).toBeNull();
    expect(await footprint(database.db)).toEqual(before);
  });

  it('too costly: several 500-event pages in one query', async () => {
    const page = (alias: string) =>
      `${alias}: events(first: 500) { edges { cursor node { id type streamType streamId streamVersion payload metadata occurredAt } } }`;
    const response = await gql(api, `{ ${['a', 'b', 'c', 'd'].map(page).join('\n')} }`);
    expect(messages(response)).toMatch(/Query Cost limit of 50000 exceeded, found \d+/);
    expect(response.body.data ?? null).toBeNull();
    // One such page is fine.
    expect((await gql(api, `{ ${page('a')} }`)).body.errors).toBeUndefined();
  });

  it('too many tokens, before any validation', async () => {
    const response = await gql(api, `{ products { ${'sku '.repeat(5000)} } }`);
    expect(messages(response)).toMatch(/Token limit of 5000 exceeded/);
  });

  it('too many directives', async () => {
    const response = await gql(api, `{ products { sku ${'@include(if: true) '.repeat(51)} } }`);
    expect(messages(response)).toMatch(/Directives limit of 50 exceeded/);
  });

  it('a body over the configured size gets 413', async () => {
    const small = createTestApi(database.db, database.url, { maxBodyBytes: 2048 });
    closers.push(() => small.close());
    const before = await footprint(database.db);
    const response = await gql(small, PLACE_ORDER, {
      input: { customerId: 'x'.repeat(4096), idempotencyKey: 'big', lines: [{ sku: 'L-KEYB', quantity: 1 }] },
    });
    expect(response.status).toBe(413);
    expect(response.body.errors?.[0]?.extensions?.code).toBe('REQUEST_ENTITY_TOO_LARGE');
    expect(await footprint(database.db)).toEqual(before);
    expect((await gql(small, '{ products { sku } }')).status).toBe(200);
  });
});

describe('rate limit per caller', () => {
  it('answers 429 RATE_LIMITED with Retry-After once a key has used its budget, other keys unaffected', async () => {
    const limited = createTestApi(database.db, database.url, {
      auth: { enabled: true },
      rateLimitPerMinute: 3,
    });
    closers.push(() => limited.close());
    for (let i = 0; i < 3; i++) {
      expect((await gql(limited, '{ products { sku } }', {}, bearer(keys.reader))).status).toBe(200);
    }
    const refused = await gql(limited, '{ products { sku } }', {}, bearer(keys.reader));
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused.body.errors).toEqual([
      {
        message: expect.stringMatching(
          /^Rate limit exceeded: at most 3 requests per minute; retry in \d+ s$/,
        ),
        extensions: { code: 'RATE_LIMITED', retryAfterSeconds: expect.any(Number) },
      },
    ]);
    expect((await gql(limited, '{ products { sku } }', {}, bearer(keys.writer))).status).toBe(200);
  });

  it('counts failed authentication against the client address', async () => {
    const limited = createTestApi(database.db, database.url, {
      auth: { enabled: true },
      rateLimitPerMinute: 2,
    });
    closers.push(() => limited.close());
    expect((await gql(limited, '{ products { sku } }')).status).toBe(401);
    expect((await gql(limited, '{ products { sku } }', {}, bearer('pbx_aaaaaaaaaa_guess'))).status).toBe(401);
    expect((await gql(limited, '{ products { sku } }', {}, bearer('pbx_aaaaaaaaaa_guess'))).status).toBe(429);
  });

  it('limits per client address when auth is off, and each WebSocket operation too', async () => {
    const server: ApiServer = await startApiServer({
      db: database.db,
      logger: silentLogger,
      auth: { enabled: false },
      host: '127.0.0.1',
      port: 0,
      rateLimitPerMinute: 4,
    });
    closers.push(() => server.close());
    // One connection for all operations: connection_init counts as one request, then each operation.
    const client: Client = wsClient(server.url, {}, { lazy: false });
    closers.push(async () => {
      await client.dispose();
    });
    for (let i = 0; i < 3; i++) expect((await wsOnce(client, '{ logHead }')).errors).toBeUndefined();
    const refused = await wsOnce(client, '{ logHead }');
    expect(refused.errors?.[0]?.extensions).toEqual({
      code: 'RATE_LIMITED',
      retryAfterSeconds: expect.any(Number),
    });
    const overHttp = await gql(server.url, '{ logHead }');
    expect(overHttp.status).toBe(429);
  });
});

describe('production mode', () => {
  it('refuses introspection', async () => {
    for (const query of ['{ __schema { types { name } } }', '{ __type(name: "Order") { name } }']) {
      const response = await gql(production, query);
      expect(messages(response)).toMatch(/GraphQL introspection has been disabled/);
      expect(response.body.data ?? null).toBeNull();
    }
    // `__typename` is not introspection of the schema.
    expect(await gqlData(production, '{ __typename }')).toEqual({ __typename: 'Query' });
    // In development it is allowed.
    const dev = createTestApi(database.db, database.url, { development: true });
    closers.push(() => dev.close());
    expect((await gql(dev, '{ __schema { queryType { name } } }')).body.errors).toBeUndefined();
  });

  it('serves no GraphiQL', async () => {
    const page = await production.yoga.fetch('http://localhost/graphql', {
      headers: { accept: 'text/html' },
    });
    expect(await page.text()).not.toMatch(/graphiql/i);
  });

  it('makes no "Did you mean" suggestions', async () => {
    const response = await gql(production, '{ product(sku: "L-KEYB") { skuu } prodcts { sku } }');
    expect(response.body.errors?.length).toBeGreaterThan(0);
    expect(messages(response)).not.toMatch(/Did you mean/);
    const dev = createTestApi(database.db, database.url, { development: true });
    closers.push(() => dev.close());
    expect(messages(await gql(dev, '{ prodcts { sku } }'))).toMatch(/Did you mean "products"/);
  });

  it('masks an unexpected error, and logs its cause under the request correlation id', async () => {
    // A pool that was shut down: every query fails the way a lost database does.
    const pool = createPool({ connectionString: database.url, logger: silentLogger, max: 1 });
    await pool.end();
    const logs = captureLogs();
    const broken = createTestApi(createDb(pool), undefined, {
      development: false,
      introspection: false,
      logger: logs.logger,
    });
    closers.push(() => broken.close());
    const response = await gql(broken, '{ products { sku } }', {}, { 'x-correlation-id': 'masked-1' });
    expect(response.body.errors).toEqual([
      expect.objectContaining({
        message: 'Unexpected error.',
        extensions: { code: 'INTERNAL_SERVER_ERROR' },
      }),
    ]);
    expect(JSON.stringify(response.body)).not.toMatch(/pool|stack|Cannot use/i);
    expect(response.headers.get('x-correlation-id')).toBe('masked-1');
    const logged = logs.lines().find((line) => line.msg === 'unexpected error (masked for the client)');
    expect(logged).toMatchObject({ level: 50, correlationId: 'masked-1', principal: 'anonymous' });
    expect(JSON.stringify(logged?.err)).toMatch(/pool/i);
  });
});
