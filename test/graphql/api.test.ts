import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { printSchemaSdl, SCHEMA_FILE } from '../../src/graphql/print-schema.ts';
import { createGraphqlApi, type GraphqlApi } from '../../src/graphql/yoga.ts';
import { silentLogger } from '../../src/logger.ts';
import { count, type RunningShop, startShop, waitForOrder, waitForQuiet } from '../shop/shop-fixtures.ts';
import { ADD_PRODUCT, createTestApi, gql, gqlData, PLACE_ORDER, readAllEvents } from './graphql-fixtures.ts';

let shop: RunningShop;
let api: GraphqlApi;

type Placed = {
  placeOrder: {
    __typename: string;
    order?: { id: string; status: string };
    field?: string;
    code?: string;
    message?: string;
  };
};

beforeAll(async () => {
  shop = await startShop({ paymentLimitCents: 500_000 });
  api = createTestApi(shop.db, shop.database.url);
  for (const input of [
    { sku: 'G-KEYB', name: 'Keyboard', priceCents: 8_900, stock: 100 },
    { sku: 'G-MOUSE', name: 'Mouse', priceCents: 2_500, stock: 100 },
  ]) {
    const data = await gqlData<{ addProduct: { __typename: string } }>(api, ADD_PRODUCT, { input });
    expect(data.addProduct.__typename).toBe('AddProductSuccess');
  }
});

afterAll(async () => {
  await api?.close();
  await shop?.stop();
});

async function place(input: Record<string, unknown>, headers?: Record<string, string>) {
  return gql<Placed>(api, PLACE_ORDER, { input }, headers);
}

/** Counts that must not move when a request is refused. */
async function footprint(): Promise<number[]> {
  await waitForQuiet(shop.db);
  return Promise.all([
    count(shop.db, 'shop.orders'),
    count(shop.db, 'shop.products'),
    count(shop.db, 'outbox.events'),
  ]);
}

describe('schema', () => {
  it('matches the committed schema.graphql (run `npm run schema:print` after changing the API)', () => {
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(printSchemaSdl());
  });
});

describe('mutations', () => {
  it('places an order, tagging every event it causes with the x-correlation-id', async () => {
    const response = await place(
      { customerId: 'ada', idempotencyKey: 'api-1', lines: [{ sku: 'G-KEYB', quantity: 2 }] },
      { 'x-correlation-id': 'req-api-1' },
    );
    expect(response.status).toBe(200);
    expect(response.headers.get('x-correlation-id')).toBe('req-api-1');
    const placed = response.body.data?.placeOrder;
    expect(placed).toMatchObject({ __typename: 'PlaceOrderSuccess', order: { status: 'PLACED' } });
    const id = placed?.order?.id as string;
    await waitForOrder(shop.db, id);

    const data = await gqlData<{
      order: {
        status: string;
        version: number;
        totalCents: number;
        events: Array<{ type: string; correlationId: string }>;
      };
    }>(
      api,
      `query($id: ID!) { order(id: $id) { status version totalCents events { type correlationId } } }`,
      { id },
    );
    expect(data.order).toMatchObject({ status: 'SHIPPED', version: 4, totalCents: 17_800 });
    expect(data.order.events.map((event) => event.type)).toEqual([
      'OrderPlaced',
      'PaymentSucceeded',
      'InventoryReserved',
      'OrderShipped',
    ]);
    expect(data.order.events.every((event) => event.correlationId === 'req-api-1')).toBe(true);

    const byCorrelation = await readAllEvents(api, null, { correlationId: 'req-api-1' });
    expect(byCorrelation.map((event) => event.type)).toEqual(data.order.events.map((event) => event.type));
  });

  it('generates a correlation id when none is sent, and returns it', async () => {
    const response = await place({
      customerId: 'bo',
      idempotencyKey: 'api-2',
      lines: [{ sku: 'G-MOUSE', quantity: 1 }],
    });
    const header = response.headers.get('x-correlation-id');
    expect(header).toMatch(/^[0-9a-f-]{36}$/);
    const events = await readAllEvents(api, null, { correlationId: header });
    expect(events.map((event) => event.type)).toContain('OrderPlaced');
  });

  it('returns the same order for the same idempotency key', async () => {
    const input = { customerId: 'cy', idempotencyKey: 'api-3', lines: [{ sku: 'G-MOUSE', quantity: 1 }] };
    const results = await Promise.all([place(input), place(input), place(input)]);
    const ids = new Set(results.map((result) => result.body.data?.placeOrder.order?.id));
    expect(ids.size).toBe(1);
    expect(await count(shop.db, 'shop.orders', `idempotency_key = 'api-3'`)).toBe(1);
  });

  it.each([
    ['an unknown SKU', [{ sku: 'NOPE', quantity: 1 }], 'lines.0.sku', /no product with SKU NOPE/],
    ['a negative quantity', [{ sku: 'G-KEYB', quantity: -1 }], 'lines.0.quantity', /at least 1/],
    ['a zero quantity', [{ sku: 'G-KEYB', quantity: 0 }], 'lines.0.quantity', /at least 1/],
    ['an empty order', [], 'lines', /at least one line/],
  ])('answers %s with a typed ValidationError and writes nothing', async (_name, lines, field, message) => {
    const before = await footprint();
    const response = await place({ customerId: 'x', idempotencyKey: `bad-${field}-${lines.length}`, lines });
    expect(response.status).toBe(200);
    expect(response.body.errors).toBeUndefined();
    expect(response.body.data?.placeOrder).toMatchObject({
      __typename: 'ValidationError',
      code: 'VALIDATION_FAILED',
      field,
    });
    expect(response.body.data?.placeOrder.message).toMatch(message);
    expect(await footprint()).toEqual(before);
  });

  it('answers a duplicate product with a typed error', async () => {
    const data = await gqlData<{ addProduct: Record<string, unknown> }>(api, ADD_PRODUCT, {
      input: { sku: 'G-KEYB', name: 'again', priceCents: 1, stock: 1 },
    });
    expect(data.addProduct).toMatchObject({ __typename: 'ValidationError', field: 'sku' });
  });

  it('restocks, and answers an unknown SKU with NotFoundError', async () => {
    const mutation = `mutation($sku: String!, $q: Int!) { restockProduct(sku: $sku, quantity: $q) {
      __typename ... on RestockProductSuccess { product { stock } } ... on Error { code } } }`;
    const ok = await gqlData<{ restockProduct: Record<string, unknown> }>(api, mutation, {
      sku: 'G-MOUSE',
      q: 10,
    });
    expect(ok.restockProduct).toMatchObject({ __typename: 'RestockProductSuccess' });
    const missing = await gqlData<{ restockProduct: Record<string, unknown> }>(api, mutation, {
      sku: 'GHOST',
      q: 1,
    });
    expect(missing.restockProduct).toEqual({ __typename: 'NotFoundError', code: 'NOT_FOUND' });
  });

  it('answers illegal transitions, stale versions and unknown orders with typed errors', async () => {
    const placed = await place({
      customerId: 'dee',
      idempotencyKey: 'api-4',
      lines: [{ sku: 'G-KEYB', quantity: 1 }],
    });
    const id = placed.body.data?.placeOrder.order?.id as string;
    await waitForOrder(shop.db, id);
    const cancel = `mutation($id: ID!, $v: Int) { cancelOrder(orderId: $id, reason: "no", expectedVersion: $v) {
      __typename ... on CancelOrderSuccess { order { status } } ... on Error { code message }
      ... on ConcurrencyError { expectedVersion actualVersion } } }`;
    const shipped = await gqlData<{ cancelOrder: Record<string, unknown> }>(api, cancel, { id });
    expect(shipped.cancelOrder).toMatchObject({ __typename: 'IllegalStateError', code: 'ILLEGAL_STATE' });
    expect(shipped.cancelOrder.message).toMatch(/SHIPPED/);
    const stale = await gqlData<{ cancelOrder: Record<string, unknown> }>(api, cancel, { id, v: 2 });
    expect(stale.cancelOrder).toMatchObject({
      __typename: 'ConcurrencyError',
      code: 'CONCURRENCY_CONFLICT',
      expectedVersion: 2,
      actualVersion: 4,
    });
    const unknown = await gqlData<{ cancelOrder: Record<string, unknown> }>(api, cancel, {
      id: '6f1c1c1e-0000-4000-8000-000000000000',
    });
    expect(unknown.cancelOrder).toMatchObject({ __typename: 'NotFoundError' });
  });
});

describe('queries', () => {
  it('pages orders newest first with opaque cursors, and filters by status', async () => {
    await waitForQuiet(shop.db);
    const query = `query($after: String, $status: OrderStatus) { orders(first: 2, after: $after, status: $status) {
      edges { cursor node { id status createdAt } } pageInfo { hasNextPage endCursor } } }`;
    type Page = {
      orders: {
        edges: Array<{ cursor: string; node: { id: string; status: string } }>;
        pageInfo: { hasNextPage: boolean; endCursor: string };
      };
    };
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page: Page = await gqlData<Page>(api, query, { after });
      seen.push(...page.orders.edges.map((edge) => edge.node.id));
      if (!page.orders.pageInfo.hasNextPage) break;
      after = page.orders.pageInfo.endCursor;
    }
    const all = await shop.db.selectFrom('shop.orders').select(['id']).orderBy('seq', 'desc').execute();
    expect(seen).toEqual(all.map((row) => row.id));

    const shipped = await gqlData<Page>(api, query, { status: 'SHIPPED' });
    expect(shipped.orders.edges.every((edge) => edge.node.status === 'SHIPPED')).toBe(true);
    const bad = await gql(api, query, { after: 'not-a-cursor' });
    expect(bad.body.errors?.[0]).toMatchObject({ extensions: { code: 'VALIDATION_FAILED', field: 'after' } });
  });

  it('pages the event log with cursors and filters by type, stream, correlation and time', async () => {
    const all = await readAllEvents(api, null);
    expect(all.length).toBeGreaterThan(10);
    expect(new Set(all.map((event) => event.id)).size).toBe(all.length);
    // A cursor from the middle continues exactly after it.
    const middle = all[5] as (typeof all)[number];
    const rest = await readAllEvents(api, middle.cursor);
    expect(rest.map((event) => event.id)).toEqual(all.slice(6).map((event) => event.id));

    const placed = await readAllEvents(api, null, {
      types: ['OrderPlaced', 'OrderShipped'],
      streamType: 'order',
    });
    expect(placed.length).toBeGreaterThan(0);
    expect(placed.every((event) => ['OrderPlaced', 'OrderShipped'].includes(event.type))).toBe(true);

    const oneStream = await readAllEvents(api, null, { streamType: 'product', streamId: 'G-MOUSE' });
    expect(oneStream.map((event) => event.type)).toEqual(['ProductAdded', 'ProductRestocked']);

    const future = await readAllEvents(api, null, { from: '2999-01-01T00:00:00Z' });
    expect(future).toEqual([]);
    const past = await readAllEvents(api, null, { to: '2000-01-01T00:00:00Z' });
    expect(past).toEqual([]);
    const now = await readAllEvents(api, null, { from: '2000-01-01T00:00:00Z', to: '2999-01-01T00:00:00Z' });
    expect(now.length).toBe(all.length);

    const bad = await gql(api, '{ events(after: "bm9wZQ") { edges { cursor } } }');
    expect(bad.body.errors?.[0]?.extensions).toMatchObject({ code: 'VALIDATION_FAILED' });
    const badDate = await gql(api, '{ events(filter: { from: "yesterday" }) { edges { cursor } } }');
    expect(badDate.body.errors?.[0]?.message).toMatch(/DateTime/);
  });

  it('lists products, consumers and the log head; GET works for queries', async () => {
    const data = await gqlData<{
      products: Array<{ sku: string }>;
      consumers: Array<{ name: string; lag: number; deadLetters: number }>;
      logHead: string | null;
    }>(
      api,
      '{ products { sku name priceCents stock } consumers { name status lag retrying deadLetters handled } logHead }',
    );
    expect(data.products.map((product) => product.sku)).toEqual(['G-KEYB', 'G-MOUSE']);
    expect(data.consumers.map((consumer) => consumer.name).sort()).toEqual([
      'inventory',
      'notifications',
      'payment',
      'shipping',
    ]);
    expect(data.logHead).toEqual(expect.any(String));

    const response = await api.yoga.fetch(
      `http://localhost/graphql?query=${encodeURIComponent('{ products { sku } }')}`,
      // GET is the one request a browser sends cross-site without a preflight: it needs the CSRF header.
      { headers: { 'x-graphql-yoga-csrf': '1' } },
    );
    expect(response.status).toBe(200);
    expect(((await response.json()) as { data: { products: unknown[] } }).data.products).toHaveLength(2);

    const mutationByGet = await api.yoga.fetch(
      `http://localhost/graphql?query=${encodeURIComponent('mutation { restockProduct(sku: "G-KEYB", quantity: 1) { __typename } }')}`,
      { headers: { 'x-graphql-yoga-csrf': '1' } },
    );
    expect(mutationByGet.status).toBe(405);
  });
});

describe('serving', () => {
  it('streams a subscription over SSE through yoga.fetch: catch-up from the beginning, same order as the connection', async () => {
    const expected = await readAllEvents(api, null, { streamType: 'product' });
    const controller = new AbortController();
    const response = await api.yoga.fetch('http://localhost/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({
        query: 'subscription { events(fromBeginning: true, filter: { streamType: "product" }) { id type } }',
      }),
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    const received: string[] = [];
    let buffered = '';
    while (received.length < expected.length) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      const messages = buffered.split('\n\n');
      buffered = messages.pop() ?? '';
      for (const message of messages) {
        const data = message.split('\n').find((line) => line.startsWith('data: '));
        if (data)
          received.push((JSON.parse(data.slice(6)) as { data: { events: { id: string } } }).data.events.id);
      }
    }
    controller.abort();
    await reader.cancel().catch(() => undefined);
    expect(received).toEqual(expected.map((event) => event.id));
  });

  it('serves GraphiQL only in development', async () => {
    const dev = createGraphqlApi({
      db: shop.db,
      logger: silentLogger,
      auth: { enabled: false },
      development: true,
    });
    try {
      const page = await dev.yoga.fetch('http://localhost/graphql', { headers: { accept: 'text/html' } });
      expect(page.status).toBe(200);
      expect(await page.text()).toMatch(/GraphiQL|graphiql/);
    } finally {
      await dev.close();
    }
    const page = await api.yoga.fetch('http://localhost/graphql', { headers: { accept: 'text/html' } });
    expect(await page.text()).not.toMatch(/graphiql/i);
  });
});

describe('bad requests get a clear GraphQL error, write nothing, and the server carries on', () => {
  it('wrong argument types', async () => {
    const before = await footprint();
    const response = await gql(api, PLACE_ORDER, {
      input: { customerId: 'x', idempotencyKey: 'types', lines: [{ sku: 'G-KEYB', quantity: 'two' }] },
    });
    expect(response.body.errors?.[0]?.message).toMatch(/Int cannot represent/);
    expect(response.body.data ?? null).toBeNull();
    const inline = await gql(
      api,
      'mutation { restockProduct(sku: "G-KEYB", quantity: "lots") { __typename } }',
    );
    expect(inline.body.errors?.[0]?.message).toMatch(/Int cannot represent/);
    expect(await footprint()).toEqual(before);
  });

  it('unknown fields', async () => {
    const before = await footprint();
    const unknownInput = await gql(api, PLACE_ORDER, {
      input: {
        customerId: 'x',
        idempotencyKey: 'unknown',
        lines: [{ sku: 'G-KEYB', quantity: 1 }],
        coupon: 'FREE',
      },
    });
    expect(unknownInput.body.errors?.[0]?.message).toMatch(/"coupon" is not defined/);
    const unknownField = await gql(api, '{ products { sku secret } }');
    expect(unknownField.body.errors?.[0]?.message).toMatch(/Cannot query field "secret" on type "Product"/);
    expect(await footprint()).toEqual(before);
  });

  it('a request body over 1 MiB', async () => {
    const before = await footprint();
    const response = await gql(api, PLACE_ORDER, {
      input: {
        customerId: 'x'.repeat(2 * 1024 * 1024),
        idempotencyKey: 'huge',
        lines: [{ sku: 'G-KEYB', quantity: 1 }],
      },
    });
    expect(response.status).toBe(413);
    expect(response.body.errors?.[0]).toMatchObject({
      message: 'Request body too large',
      extensions: { code: 'REQUEST_ENTITY_TOO_LARGE' },
    });
    expect(await footprint()).toEqual(before);
  });

  it('a deeply nested query', async () => {
    let selection = 'sku';
    for (let i = 0; i < 15; i++) selection = `products { ${selection} }`;
    const response = await gql(api, `{ ${selection} }`);
    expect(response.body.errors?.map((error) => error.message).join('\n')).toMatch(
      /depth limit of 10 exceeded/,
    );
    expect(response.body.data ?? null).toBeNull();
  });

  it('still answers afterwards', async () => {
    const data = await gqlData<{ products: unknown[] }>(api, '{ products { sku } }');
    expect(data.products).toHaveLength(2);
  });
});
