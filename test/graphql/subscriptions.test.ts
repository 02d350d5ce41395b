import { setTimeout as sleep } from 'node:timers/promises';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { type RunningShop, startShop, waitForAllFinal, waitForQuiet } from '../shop/shop-fixtures.ts';
import {
  ADD_PRODUCT,
  EVENT_FIELDS,
  type EventSummary,
  gqlData,
  PLACE_ORDER,
  readAllEvents,
} from './graphql-fixtures.ts';

type EventNode = EventSummary;
type OrderState = { id: string; status: string; version: number; final: boolean };

/** What a subscription received, however it is carried. */
interface Received<T> {
  readonly items: T[];
  readonly errors: unknown[];
  completed: boolean;
  readonly ended: Promise<void>;
  stop(): void;
}

let shop: RunningShop;
let server: ApiServer;
let ws: ReturnType<typeof createWsClient>;
let sse: ReturnType<typeof createSseClient>;

beforeAll(async () => {
  shop = await startShop({ paymentLimitCents: 1_000_000, poolSize: 40, concurrency: 10 });
  server = await startApiServer({
    db: shop.db,
    connectionString: shop.database.url,
    logger: silentLogger,
    auth: { enabled: false },
    host: '127.0.0.1',
    port: 0,
    feed: { pollIntervalMs: 25 },
  });
  ws = createWsClient({ url: server.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
  sse = createSseClient({ url: server.url, retryAttempts: 0 });
  for (const input of [
    { sku: 'S-KEYB', name: 'Keyboard', priceCents: 8_900, stock: 100_000 },
    { sku: 'S-MOUSE', name: 'Mouse', priceCents: 2_500, stock: 100_000 },
    { sku: 'S-GPU', name: 'GPU', priceCents: 120_000, stock: 40 },
    { sku: 'S-LAPTOP', name: 'Laptop', priceCents: 400_000, stock: 100_000 },
  ]) {
    await gqlData(server.url, ADD_PRODUCT, { input });
  }
});

afterAll(async () => {
  await ws?.dispose();
  await server?.close();
  await shop?.stop();
});

function subscribeWith<T>(
  transport: 'ws' | 'sse',
  query: string,
  variables: Record<string, unknown>,
  pick: (data: Record<string, unknown>) => T,
): Received<T> {
  let resolveEnded: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => {
    resolveEnded = resolve;
  });
  const received: Received<T> = {
    items: [],
    errors: [],
    completed: false,
    ended,
    stop: () => undefined,
  };
  const sink = {
    next: (result: { data?: unknown; errors?: unknown }) => {
      if (result.errors) received.errors.push(result.errors);
      if (result.data) received.items.push(pick(result.data as Record<string, unknown>));
    },
    error: (error: unknown) => {
      received.errors.push(error);
      resolveEnded();
    },
    complete: () => {
      received.completed = true;
      resolveEnded();
    },
  };
  received.stop =
    transport === 'ws'
      ? ws.subscribe({ query, variables }, sink as never)
      : sse.subscribe({ query, variables }, sink as never);
  return received;
}

const EVENTS_SUBSCRIPTION = `subscription($after: String, $fromBeginning: Boolean, $filter: EventFilter) {
  events(after: $after, fromBeginning: $fromBeginning, filter: $filter) { ${EVENT_FIELDS} }
}`;

function subscribeEvents(transport: 'ws' | 'sse', variables: Record<string, unknown>): Received<EventNode> {
  return subscribeWith(transport, EVENTS_SUBSCRIPTION, variables, (data) => data.events as EventNode);
}

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(25);
  }
}

let orderCounter = 0;
/** Places orders over HTTP, all at once; returns their ids. */
async function placeOrders(
  count: number,
  prefix: string,
  fixedLines?: Array<{ sku: string; quantity: number }>,
): Promise<string[]> {
  const results = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const n = ++orderCounter;
      const lines = fixedLines ?? [
        { sku: ['S-KEYB', 'S-MOUSE', 'S-GPU', 'S-LAPTOP'][n % 4] as string, quantity: 1 + (n % 3) },
      ];
      const data = await gqlData<{ placeOrder: { order?: { id: string } } }>(
        server.url,
        PLACE_ORDER,
        { input: { customerId: `c-${n % 9}`, idempotencyKey: `${prefix}-${i}`, lines } },
        { 'x-correlation-id': `${prefix}-${i}` },
      );
      return data.placeOrder.order?.id as string;
    }),
  );
  expect(results.every((id) => typeof id === 'string')).toBe(true);
  return results;
}

function ids(events: readonly EventNode[]): string[] {
  return events.map((event) => event.id);
}

/** Within each stream, versions arrive increasing by one from wherever the receiver started. */
function expectStreamOrder(events: readonly EventNode[]): void {
  const last = new Map<string, number>();
  for (const event of events) {
    const previous = last.get(event.streamId);
    if (previous !== undefined) expect(event.streamVersion, event.streamId).toBe(previous + 1);
    last.set(event.streamId, event.streamVersion);
  }
}

describe('subscriptions over a real server', () => {
  it('graphql-ws and graphql-sse both get catch-up then live events, no gap or duplicate, under 200 concurrent orders', async () => {
    const history = await placeOrders(10, 'history');
    await waitForAllFinal(shop.db, history);
    const before = await readAllEvents(server.url, null);
    const cursor = before[Math.floor(before.length / 2)]?.cursor as string;

    const wsFromCursor = subscribeEvents('ws', { after: cursor });
    const sseFromCursor = subscribeEvents('sse', { after: cursor });
    const wsOrdersFromStart = subscribeEvents('ws', { fromBeginning: true, filter: { streamType: 'order' } });
    const sseTypes = subscribeEvents('sse', {
      fromBeginning: true,
      filter: { types: ['OrderPlaced', 'OrderShipped', 'StockDepleted'] },
    });

    const placed = await placeOrders(200, 'bulk');
    const orders = await waitForAllFinal(shop.db, placed);
    await waitForQuiet(shop.db);

    const expectedAfterCursor = ids(await readAllEvents(server.url, cursor));
    const expectedOrders = ids(await readAllEvents(server.url, null, { streamType: 'order' }));
    const expectedTypes = ids(
      await readAllEvents(server.url, null, { types: ['OrderPlaced', 'OrderShipped', 'StockDepleted'] }),
    );
    await until(
      () =>
        wsFromCursor.items.length >= expectedAfterCursor.length &&
        sseFromCursor.items.length >= expectedAfterCursor.length &&
        wsOrdersFromStart.items.length >= expectedOrders.length &&
        sseTypes.items.length >= expectedTypes.length,
      'subscribers to receive every event',
    );
    await sleep(300); // a duplicate would arrive now
    for (const received of [wsFromCursor, sseFromCursor, wsOrdersFromStart, sseTypes]) {
      expect(received.errors).toEqual([]);
      received.stop();
    }
    expect(ids(wsFromCursor.items)).toEqual(expectedAfterCursor);
    expect(ids(sseFromCursor.items)).toEqual(expectedAfterCursor);
    expect(ids(wsOrdersFromStart.items)).toEqual(expectedOrders);
    expect(ids(sseTypes.items)).toEqual(expectedTypes);
    expectStreamOrder(wsOrdersFromStart.items);
    // Cursors are the connection's cursors: each one is exactly where the connection would continue.
    const sample = wsFromCursor.items[17] as EventNode;
    expect(ids(await readAllEvents(server.url, sample.cursor))).toEqual(expectedAfterCursor.slice(18));

    // The 200 orders themselves: all final, one payment each, stock never negative.
    expect(orders.every((order) => ['SHIPPED', 'PAYMENT_FAILED', 'REJECTED'].includes(order.status))).toBe(
      true,
    );
    const { rows: payments } = await sql<{ n: number }>`
      select count(*)::int as n from shop.payments where order_id = any(${placed}::uuid[]) group by order_id`.execute(
      shop.db,
    );
    expect(payments).toHaveLength(200);
    expect(payments.every((row) => row.n === 1)).toBe(true);
    const { rows: negative } = await sql`select sku from shop.products where stock < 0`.execute(shop.db);
    expect(negative).toEqual([]);
  });

  it('without a cursor, delivers only what happens after subscribing: a contiguous tail of the log', async () => {
    const wsLive = subscribeEvents('ws', {});
    const sseLive = subscribeEvents('sse', {});
    // Subscriptions start asynchronously: place probe orders until both have seen one.
    for (let probe = 0; wsLive.items.length === 0 || sseLive.items.length === 0; probe++) {
      if (probe > 100) throw new Error('live subscriptions never started');
      await placeOrders(1, `probe-${probe}`);
      await sleep(100);
    }
    const placed = await placeOrders(30, 'live');
    await waitForAllFinal(shop.db, placed);
    await waitForQuiet(shop.db);
    const all = ids(await readAllEvents(server.url, null));
    const tail = (received: Received<EventNode>) => {
      const first = all.indexOf(received.items[0]?.id as string);
      expect(first).toBeGreaterThan(0);
      return all.slice(first);
    };
    await until(
      () => wsLive.items.at(-1)?.id === all.at(-1) && sseLive.items.at(-1)?.id === all.at(-1),
      'live subscribers to reach the end of the log',
    );
    await sleep(200);
    wsLive.stop();
    sseLive.stop();
    expect(ids(wsLive.items)).toEqual(tail(wsLive));
    expect(ids(sseLive.items)).toEqual(tail(sseLive));
    const liveCorrelations = new Set(wsLive.items.map((event) => event.correlationId));
    for (let i = 0; i < 30; i++) expect(liveCorrelations.has(`live-${i}`)).toBe(true);
  });

  it('orderUpdated: the current state at once, then each new state, completing when final', async () => {
    const query = 'subscription($id: ID!) { orderUpdated(id: $id) { id status version final } }';
    const [id] = await placeOrders(1, 'watched', [{ sku: 'S-MOUSE', quantity: 1 }]);
    const overWs = subscribeWith<OrderState>('ws', query, { id }, (data) => data.orderUpdated as OrderState);
    const overSse = subscribeWith<OrderState>(
      'sse',
      query,
      { id },
      (data) => data.orderUpdated as OrderState,
    );
    await Promise.all([overWs.ended, overSse.ended]);
    for (const received of [overWs, overSse]) {
      expect(received.errors).toEqual([]);
      expect(received.completed).toBe(true);
      const versions = received.items.map((state) => state.version);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
      expect(new Set(versions).size).toBe(versions.length);
      expect(received.items.at(-1)).toMatchObject({ status: 'SHIPPED', version: 4, final: true });
      expect(received.items.slice(0, -1).every((state) => !state.final)).toBe(true);
    }

    // Already final: one state, then complete.
    const again = subscribeWith<OrderState>('ws', query, { id }, (data) => data.orderUpdated as OrderState);
    await again.ended;
    expect(again.items).toEqual([{ id, status: 'SHIPPED', version: 4, final: true }]);

    // Unknown order: an error, not a hang.
    const unknown = subscribeWith<OrderState>(
      'sse',
      query,
      { id: '3f0c0a8e-0000-4000-8000-000000000000' },
      (data) => data.orderUpdated as OrderState,
    );
    await unknown.ended;
    expect(JSON.stringify(unknown.errors)).toMatch(/NOT_FOUND|No order/);
  });

  it('runs mutations over WebSocket too, with the correlation id from connection_init', async () => {
    const client = createWsClient({
      url: server.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { correlationId: 'ws-corr-1' },
    });
    try {
      const results: unknown[] = [];
      for await (const result of client.iterate({
        query: PLACE_ORDER,
        variables: {
          input: { customerId: 'ws', idempotencyKey: 'ws-1', lines: [{ sku: 'S-MOUSE', quantity: 1 }] },
        },
      })) {
        results.push(result);
      }
      expect(results).toMatchObject([{ data: { placeOrder: { __typename: 'PlaceOrderSuccess' } } }]);
      const events = await readAllEvents(server.url, null, { correlationId: 'ws-corr-1' });
      expect(events.map((event) => event.type)).toContain('OrderPlaced');
    } finally {
      await client.dispose();
    }
  });

  it('refuses a bad cursor on the subscription with a clear error', async () => {
    const received = subscribeEvents('ws', { after: 'garbage' });
    await received.ended;
    expect(JSON.stringify(received.errors)).toMatch(/after is not a valid cursor/);
  });

  it('ends open subscriptions when the server shuts down', async () => {
    const overWs = subscribeEvents('ws', {});
    const overSse = subscribeEvents('sse', {});
    await sleep(200);
    expect(server.api.tailer.subscriberCount).toBe(2);
    await server.close();
    await Promise.race([Promise.all([overWs.ended, overSse.ended]), sleep(10_000)]);
    expect(overSse.completed || overSse.errors.length > 0).toBe(true);
    expect(overWs.completed || overWs.errors.length > 0).toBe(true);
    expect(server.api.tailer.subscriberCount).toBe(0);
  });
});
