import type { Client } from 'graphql-ws';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, revokeApiKey } from '../../src/auth/api-keys.ts';
import { createJwtVerifier } from '../../src/auth/jwt.ts';
import { readStream } from '../../src/engine/outbox/read.ts';
import { schema } from '../../src/graphql/schema/index.ts';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import type { GraphqlApi } from '../../src/graphql/yoga.ts';
import { silentLogger } from '../../src/logger.ts';
import { addProduct } from '../../src/shop/product.service.ts';
import { ADD_PRODUCT, createTestApi, gql, PLACE_ORDER } from '../graphql/graphql-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import {
  bearer,
  connectRaw,
  createTestKeys,
  footprint,
  type TestKeys,
  wsClient,
  wsOnce,
} from './hardening-fixtures.ts';

const JWT_SECRET = 'a-test-secret-that-is-long-enough-for-hs256';

let database: TestDatabase;
let api: GraphqlApi;
let server: ApiServer;
let keys: TestKeys;
const clients: Client[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  await addProduct(database.db, { sku: 'A-KEYB', name: 'Keyboard', priceCents: 8_900, stock: 1000 });
  keys = await createTestKeys(database.db);
  const auth = { enabled: true, jwt: await createJwtVerifier({ hs256Secret: JWT_SECRET }) };
  api = createTestApi(database.db, database.url, { auth });
  server = await startApiServer({
    db: database.db,
    connectionString: database.url,
    logger: silentLogger,
    auth,
    host: '127.0.0.1',
    port: 0,
    feed: { pollIntervalMs: 25 },
    maxSubscriptionsPerConnection: 2,
  });
});

afterAll(async () => {
  for (const client of clients) await client.dispose();
  await server?.close();
  await api?.close();
  await database?.drop();
});

let orderCounter = 0;
function orderInput() {
  orderCounter++;
  return {
    customerId: 'ada',
    idempotencyKey: `auth-${orderCounter}`,
    lines: [{ sku: 'A-KEYB', quantity: 1 }],
  };
}

async function signJwt(
  claims: Record<string, unknown>,
  secret = JWT_SECRET,
  expiresIn = '5m',
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('user-42')
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}

describe('HTTP: authentication', () => {
  it('refuses a request without credentials with 401 and UNAUTHENTICATED, before running anything', async () => {
    const before = await footprint(database.db);
    const response = await gql(api, PLACE_ORDER, { input: orderInput() });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(response.body.data ?? null).toBeNull();
    expect(response.body.errors).toEqual([
      {
        message: expect.stringMatching(/^Unauthenticated: missing credentials/),
        extensions: { code: 'UNAUTHENTICATED' },
      },
    ]);
    expect(await footprint(database.db)).toEqual(before);
  });

  it('refuses malformed, unknown and revoked keys with 401', async () => {
    const doomed = await createApiKey(database.db, { name: 'doomed', scopes: ['admin'] });
    expect((await gql(api, '{ products { sku } }', {}, bearer(doomed.key))).status).toBe(200);
    await revokeApiKey(database.db, doomed.id);
    for (const key of [doomed.key, 'pbx_aaaaaaaaaa_not-a-real-secret', 'nonsense', `${keys.reader}x`]) {
      const response = await gql(api, '{ products { sku } }', {}, bearer(key));
      expect(response.status).toBe(401);
      expect(response.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
  });

  it('does not answer validation questions to strangers (no schema probing without a key)', async () => {
    const response = await gql(api, '{ secretField }');
    expect(response.status).toBe(401);
    expect(JSON.stringify(response.body)).not.toMatch(/secretField/);
  });

  it('accepts an API key in x-api-key as well as in Authorization', async () => {
    const response = await gql(api, '{ products { sku } }', {}, { 'x-api-key': keys.reader });
    expect(response.status).toBe(200);
    expect(response.body.data).toEqual({ products: [{ sku: 'A-KEYB' }] });
  });
});

describe('HTTP: browsers on other origins', () => {
  const preflight = (target: GraphqlApi) =>
    target.yoga.fetch('http://localhost/graphql', {
      method: 'OPTIONS',
      headers: {
        origin: 'https://elsewhere.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });

  it('may call with a key when auth is on (bearer tokens, no cookies)', async () => {
    expect((await preflight(api)).headers.get('access-control-allow-origin')).toBe(
      'https://elsewhere.example',
    );
  });

  it('get no CORS grant when auth is off, so a web page cannot drive an open local API', async () => {
    const open = createTestApi(database.db, database.url);
    try {
      expect((await preflight(open)).headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await open.close();
    }
  });
});

describe('HTTP: scopes', () => {
  it('refuses a key lacking the scope with 403 and FORBIDDEN, writing nothing', async () => {
    const before = await footprint(database.db);
    const response = await gql(api, PLACE_ORDER, { input: orderInput() }, bearer(keys.reader));
    expect(response.status).toBe(403);
    expect(response.body.data ?? null).toBeNull();
    expect(response.body.errors?.[0]).toMatchObject({
      message: 'Forbidden: Mutation.placeOrder needs scope orders:write',
      extensions: { code: 'FORBIDDEN', requiredScopes: ['orders:write'] },
      path: ['placeOrder'],
    });
    expect(response.body.errors?.[0]?.extensions).not.toHaveProperty('http');
    expect(await footprint(database.db)).toEqual(before);
  });

  it('lets the right scope through with 200, recording the key as the actor of the events', async () => {
    const response = await gql<{ placeOrder: { __typename: string; order: { id: string } } }>(
      api,
      PLACE_ORDER,
      { input: orderInput() },
      bearer(keys.writer),
    );
    expect(response.status).toBe(200);
    expect(response.body.data?.placeOrder.__typename).toBe('PlaceOrderSuccess');
    const [placed] = await readStream(
      database.db,
      'order',
      response.body.data?.placeOrder.order.id as string,
    );
    expect(placed?.metadata.actor).toMatch(/^key:[0-9a-f-]{36}$/);
  });

  it('applies the documented policy to every kind of caller', async () => {
    const operations = {
      placeOrder: { query: PLACE_ORDER, variables: () => ({ input: orderInput() }) },
      readOrders: { query: '{ orders(first: 1) { edges { node { id events { type } } } } }' },
      readCatalogue: { query: '{ products { sku } product(sku: "A-KEYB") { stock } }' },
      readLog: { query: '{ events(first: 1) { edges { node { type } } } logHead }' },
      addProduct: {
        query: ADD_PRODUCT,
        variables: () => ({ input: { sku: `P-${++orderCounter}`, name: 'Pen', priceCents: 100, stock: 1 } }),
      },
      consumers: { query: '{ consumers { name } }' },
    } as const;
    const expected: Record<keyof TestKeys, Record<keyof typeof operations, number>> = {
      writer: {
        placeOrder: 200,
        readOrders: 200,
        readCatalogue: 200,
        readLog: 403,
        addProduct: 403,
        consumers: 403,
      },
      reader: {
        placeOrder: 403,
        readOrders: 200,
        readCatalogue: 200,
        readLog: 200,
        addProduct: 403,
        consumers: 403,
      },
      admin: {
        placeOrder: 200,
        readOrders: 200,
        readCatalogue: 200,
        readLog: 200,
        addProduct: 200,
        consumers: 200,
      },
    };
    const actual: Record<string, Record<string, number>> = {};
    for (const who of Object.keys(expected) as Array<keyof TestKeys>) {
      actual[who] = {};
      for (const [name, operation] of Object.entries(operations)) {
        const variables = 'variables' in operation ? operation.variables() : {};
        const response = await gql(api, operation.query, variables, bearer(keys[who]));
        (actual[who] as Record<string, number>)[name] = response.status;
        if (response.status === 200) expect(response.body.errors).toBeUndefined();
        else expect(response.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      }
    }
    expect(actual).toEqual(expected);
  });

  it('guards every root field with a scope (a new field without authScopes fails here)', () => {
    const unguarded: string[] = [];
    for (const root of [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]) {
      for (const field of Object.values(root?.getFields() ?? {})) {
        const options = field.extensions?.pothosOptions as { authScopes?: unknown } | undefined;
        if (!options?.authScopes) unguarded.push(`${root?.name}.${field.name}`);
      }
    }
    expect(unguarded).toEqual([]);
    // Sanity check of the walk itself.
    expect(Object.keys(schema.getMutationType()?.getFields() ?? {})).toContain('placeOrder');
  });
});

describe('HTTP: JWT bearer tokens', () => {
  it('accepts an HS256 token and maps its scope claim', async () => {
    const token = await signJwt({ scope: 'orders:write' });
    const placed = await gql(api, PLACE_ORDER, { input: orderInput() }, bearer(token));
    expect(placed.status).toBe(200);
    expect(placed.body.errors).toBeUndefined();
    const log = await gql(api, '{ logHead }', {}, bearer(token));
    expect(log.status).toBe(403);
    const reader = await gql(api, '{ logHead }', {}, bearer(await signJwt({ scopes: ['events:read'] })));
    expect(reader.status).toBe(200);
  });

  it('refuses a token signed with another secret, or expired, with 401', async () => {
    for (const token of [
      await signJwt({ scope: 'admin' }, 'another-secret-that-is-long-enough-for-hs256'),
      await signJwt({ scope: 'admin' }, JWT_SECRET, '-1m'),
    ]) {
      const response = await gql(api, '{ products { sku } }', {}, bearer(token));
      expect(response.status).toBe(401);
      expect(response.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
  });
});

describe('WebSocket: authentication and scopes', () => {
  it('closes a connection without credentials with 4401', async () => {
    const outcome = await connectRaw(server.url, {});
    expect(outcome).toEqual({
      acked: false,
      code: 4401,
      reason: expect.stringMatching(/missing credentials/),
    });
  });

  it('closes a connection with a bad key with 4401, and one whose token has no Postbox scope with 4403', async () => {
    expect(await connectRaw(server.url, { apiKey: 'pbx_aaaaaaaaaa_nope' })).toMatchObject({ code: 4401 });
    const scopeless = await signJwt({ scope: 'billing:read' });
    expect(await connectRaw(server.url, { authorization: `Bearer ${scopeless}` })).toMatchObject({
      code: 4403,
    });
    expect(await connectRaw(server.url, { authorization: `Bearer ${keys.reader}` })).toEqual({ acked: true });
  });

  it('lets a reader subscribe to events, but refuses its placeOrder with FORBIDDEN', async () => {
    const client = wsClient(server.url, { authorization: `Bearer ${keys.reader}` });
    clients.push(client);
    const events = client.iterate<{ events: { type: string } }>({
      query: 'subscription { events(fromBeginning: true) { type } }',
    });
    const first = await events.next();
    expect(first.value?.data?.events.type).toBe('ProductAdded');
    await events.return?.();

    const refused = await wsOnce(client, PLACE_ORDER, { input: orderInput() });
    expect(refused.data ?? null).toBeNull();
    expect(refused.errors?.[0]).toMatchObject({
      message: 'Forbidden: Mutation.placeOrder needs scope orders:write',
      extensions: { code: 'FORBIDDEN' },
    });
    expect(refused.errors?.[0]?.extensions).not.toHaveProperty('http');
  });

  it('checks subscription scopes when the subscription starts', async () => {
    const client = wsClient(server.url, { apiKey: keys.writer });
    clients.push(client);
    const refused = await wsOnce(client, 'subscription { events { type } }');
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const placed = await wsOnce<{ placeOrder: { __typename: string } }>(client, PLACE_ORDER, {
      input: orderInput(),
    });
    expect(placed.data?.placeOrder.__typename).toBe('PlaceOrderSuccess');
  });

  it('refuses subscriptions beyond the per-connection limit with TOO_MANY_SUBSCRIPTIONS', async () => {
    const client = wsClient(server.url, { apiKey: keys.reader });
    clients.push(client);
    const query = 'subscription { events { type } }';
    const open = [client.iterate({ query }), client.iterate({ query })];
    // Let both start (a query on the same connection is answered after them).
    await wsOnce(client, '{ logHead }');
    const third = await wsOnce(client, query);
    expect(third.errors?.[0]).toMatchObject({
      message: expect.stringMatching(/^Too many subscriptions on this connection: at most 2/),
      extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' },
    });
    // Queries and mutations are not subscriptions: still fine.
    expect((await wsOnce(client, '{ logHead }')).errors).toBeUndefined();
    // Completing one frees its place.
    await open[0]?.return?.();
    const again = client.iterate({ query });
    await wsOnce(client, '{ logHead }');
    const fourth = await wsOnce(client, query);
    expect(fourth.errors?.[0]?.extensions?.code).toBe('TOO_MANY_SUBSCRIPTIONS');
    await again.return?.();
    await open[1]?.return?.();
  });
});
