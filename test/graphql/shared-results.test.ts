import { randomUUID } from 'node:crypto';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createApiKey } from '../../src/auth/api-keys.ts';
import { ANONYMOUS } from '../../src/auth/principal.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { OrderPlaced, ProductAdded } from '../../src/shop/shop.events.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { createTestApi } from './graphql-fixtures.ts';

// The `events` subscription executes and serialises each event once per distinct selection (and scopes),
// not once per subscriber (shared-results.ts). These tests pin what that must never change: every
// subscriber gets exactly its own selection, its own filter, only what its key allows, and — resuming from
// a cursor while events are being written — every event after the cursor exactly once, in log order.

let database: TestDatabase;
let server: ApiServer;
let readerKey: string;
let adminKey: string;
let writerKey: string;

beforeAll(async () => {
  database = await createTestDatabase({ poolSize: 10 });
  server = await startApiServer({
    db: database.db,
    connectionString: database.url,
    logger: silentLogger,
    auth: { enabled: true },
    host: '127.0.0.1',
    port: 0,
    feed: { pollIntervalMs: 25 },
  });
  readerKey = (await createApiKey(database.db, { name: 'reader', scopes: ['events:read'] })).key;
  adminKey = (await createApiKey(database.db, { name: 'admin', scopes: ['admin'] })).key;
  writerKey = (await createApiKey(database.db, { name: 'writer', scopes: ['orders:write'] })).key;
  // One event to start from: every subscriber below resumes after a cursor.
  await appendMixed([randomUUID()], [], 1);
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

type Transport = 'ws' | 'sse';

/** What one subscriber received. */
interface Subscriber {
  readonly results: Array<{ data?: Record<string, unknown>; errors?: unknown }>;
  readonly failures: unknown[];
  stop(): Promise<void>;
}

/** One subscriber on its own connection (a graphql-ws socket or a graphql-sse stream), with `key`. */
function subscribe(
  transport: Transport,
  key: string,
  query: string,
  variables: Record<string, unknown> = {},
): Subscriber {
  const results: Subscriber['results'] = [];
  const failures: unknown[] = [];
  const sink = {
    next: (result: { data?: unknown; errors?: unknown }) => results.push(result as Subscriber['results'][0]),
    error: (error: unknown) => failures.push(error),
    complete: () => undefined,
  };
  if (transport === 'ws') {
    const client = createWsClient({
      url: server.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${key}` },
    });
    const unsubscribe = client.subscribe({ query, variables }, sink);
    return {
      results,
      failures,
      stop: async () => {
        unsubscribe();
        await client.dispose();
      },
    };
  }
  const client = createSseClient({
    url: server.url,
    retryAttempts: 0,
    headers: { authorization: `Bearer ${key}` },
  });
  const unsubscribe = client.subscribe({ query, variables }, sink);
  return {
    results,
    failures,
    stop: async () => {
      unsubscribe();
      client.dispose();
    },
  };
}

/** Events appended so far by {@link appendMixed}: the whole log of this test's database. */
let appended = 0;

/** Appends one event per transaction (order events on `orderIds`, product events on `skus`), in turn. */
async function appendMixed(orderIds: readonly string[], skus: readonly string[], rounds: number) {
  for (let round = 0; round < rounds; round++) {
    for (const orderId of orderIds) {
      await database.db.transaction().execute((trx) =>
        appendEvents(trx, [
          OrderPlaced.create(orderId, {
            orderId,
            customerId: `c-${round}`,
            lines: [{ sku: 'S-1', name: 'One', quantity: 1, unitPriceCents: 100 }],
            totalCents: 100 + round,
          }),
        ]),
      );
      appended++;
    }
    for (const sku of skus) {
      await database.db.transaction().execute((trx) =>
        appendEvents(trx, [
          ProductAdded.create(`${sku}-${round}`, {
            sku: `${sku}-${round}`,
            name: sku,
            priceCents: 5,
            stock: 1,
          }),
        ]),
      );
      appended++;
    }
  }
}

/** Every event of the log after `after` (or all), in read order, as the API serves them. */
async function logAfter(after?: string): Promise<Array<Record<string, unknown>>> {
  const nodes: Array<Record<string, unknown>> = [];
  let cursor = after ?? null;
  for (;;) {
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${readerKey}` },
      body: JSON.stringify({
        query: `query($after: String) { events(first: 500, after: $after) {
          edges { node { id cursor type streamType streamId payload } } pageInfo { hasNextPage endCursor } } }`,
        variables: { after: cursor },
      }),
    });
    const body = (await response.json()) as {
      data: {
        events: {
          edges: Array<{ node: Record<string, unknown> }>;
          pageInfo: { hasNextPage: boolean; endCursor: string | null };
        };
      };
    };
    nodes.push(...body.data.events.edges.map((edge) => edge.node));
    if (!body.data.events.pageInfo.hasNextPage) return nodes;
    cursor = body.data.events.pageInfo.endCursor;
  }
}

/**
 * The whole log once every appended event is readable. The log is read below the oldest running transaction
 * of the server, and on a shared server another database's open transaction can hold that back a while.
 */
async function readableLog(): Promise<Array<Record<string, unknown>>> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const log = await logAfter();
    if (log.length === appended) return log;
    if (Date.now() > deadline) throw new Error(`${log.length} of ${appended} events readable`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The part of `log` after the event with `cursor`. */
function eventsAfter(log: ReadonlyArray<Record<string, unknown>>, cursor: string) {
  return log.slice(log.findIndex((event) => event.cursor === cursor) + 1);
}

/** Waits until `count` feeds are attached to the API's log reader and have read past their cursor. */
async function untilLive(count: number) {
  const deadline = Date.now() + 30_000;
  while (server.api.tailer.subscriberCount < count) {
    if (Date.now() > deadline)
      throw new Error(`${server.api.tailer.subscriberCount} of ${count} subscribers live`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  // Their catch-up reads (empty: nothing was written after the cursor) take a few milliseconds more.
  await new Promise((resolve) => setTimeout(resolve, 300));
}

/** Waits until every subscriber has at least `counts[i]` results (or fails with its errors). */
async function untilReceived(subscribers: readonly Subscriber[], counts: readonly number[]) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    for (const subscriber of subscribers) {
      if (subscriber.failures.length > 0) throw new Error(JSON.stringify(subscriber.failures[0]));
    }
    if (subscribers.every((subscriber, i) => subscriber.results.length >= (counts[i] ?? 0))) return;
    if (Date.now() > deadline) {
      const got = subscribers.map((subscriber) => subscriber.results.length);
      throw new Error(`expected ${counts.join('/')} results, got ${got.join('/')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('shared subscription results', () => {
  it('gives subscribers of different selections, aliases, variables and filters each exactly their own shape and events', async () => {
    const orderIds = [randomUUID(), randomUUID()];
    const [firstOrder] = orderIds as [string, string];
    const head = (await readableLog()).at(-1)?.cursor as string;
    const ID_TYPE = `subscription($after: String) { events(after: $after) { id type } }`;
    const specs: Array<{ transport: Transport; query: string; variables: Record<string, unknown> }> = [
      // Two subscribers of one selection on different transports, a third with a filter: one group.
      { transport: 'ws', query: ID_TYPE, variables: { after: head } },
      { transport: 'sse', query: ID_TYPE, variables: { after: head } },
      {
        transport: 'sse',
        query: `subscription($after: String, $filter: EventFilter) { events(after: $after, filter: $filter) { id type } }`,
        variables: { after: head, filter: { streamId: firstOrder } },
      },
      // Another selection, an alias, and a variable inside the selection (two values: two shapes).
      {
        transport: 'ws',
        query: `subscription($after: String) { events(after: $after) { streamId payload } }`,
        variables: { after: head },
      },
      {
        transport: 'sse',
        query: `subscription($after: String) { e: events(after: $after, filter: { streamType: "product" }) { id streamType } }`,
        variables: { after: head },
      },
      {
        transport: 'ws',
        query: `subscription($after: String, $p: Boolean!) { events(after: $after) { id payload @include(if: $p) } }`,
        variables: { after: head, p: true },
      },
      {
        transport: 'sse',
        query: `subscription($after: String, $p: Boolean!) { events(after: $after) { id payload @include(if: $p) } }`,
        variables: { after: head, p: false },
      },
    ];
    const subscribers = specs.map((spec) => subscribe(spec.transport, readerKey, spec.query, spec.variables));
    try {
      // Live before anything is written, so the events reach them through the shared fan-out (a catch-up
      // read gives each subscriber objects of its own, which are never shared).
      await untilLive(specs.length);
      await appendMixed(orderIds, ['SKU-A'], 5);
      const log = eventsAfter(await readableLog(), head);
      expect(log).toHaveLength(15);
      const ofFirstOrder = log.filter((event) => event.streamId === firstOrder);
      const ofProducts = log.filter((event) => event.streamType === 'product');
      await untilReceived(subscribers, [15, 15, ofFirstOrder.length, 15, ofProducts.length, 15, 15]);
      // A moment for anything extra (a duplicate, another group's event) to show up.
      await new Promise((resolve) => setTimeout(resolve, 300));

      const data = subscribers.map((subscriber) => subscriber.results.map((result) => result.data));
      for (const subscriber of subscribers) {
        expect(subscriber.results.every((result) => result.errors === undefined)).toBe(true);
      }
      const idType = log.map((event) => ({ events: { id: event.id, type: event.type } }));
      expect(data[0]).toEqual(idType);
      expect(data[1]).toEqual(idType);
      expect(data[2]).toEqual(ofFirstOrder.map((event) => ({ events: { id: event.id, type: event.type } })));
      expect(data[3]).toEqual(
        log.map((event) => ({ events: { streamId: event.streamId, payload: event.payload } })),
      );
      expect(data[4]).toEqual(ofProducts.map((event) => ({ e: { id: event.id, streamType: 'product' } })));
      expect(data[5]).toEqual(log.map((event) => ({ events: { id: event.id, payload: event.payload } })));
      expect(data[6]).toEqual(log.map((event) => ({ events: { id: event.id } })));
    } finally {
      await Promise.all(subscribers.map((subscriber) => subscriber.stop()));
    }
  });

  it('gives a key without events:read nothing, while keys with it on the same selection get every event', async () => {
    const head = (await readableLog()).at(-1)?.cursor as string;
    const query = `subscription($after: String) { events(after: $after) { id type payload } }`;
    const reader = subscribe('ws', readerKey, query, { after: head });
    const admin = subscribe('sse', adminKey, query, { after: head });
    const writerWs = subscribe('ws', writerKey, query, { after: head });
    const writerSse = subscribe('sse', writerKey, query, { after: head });
    try {
      await untilLive(2);
      await appendMixed([randomUUID()], [], 4);
      await untilReceived([reader, admin], [4, 4]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(reader.results.map((result) => result.data)).toEqual(admin.results.map((result) => result.data));
      for (const writer of [writerWs, writerSse]) {
        const data = writer.results.filter((result) => result.data?.events);
        expect(data).toEqual([]);
        // Over WebSocket the operation's error; over SSE graphql-sse reports the 403 response.
        const errors = [
          ...writer.failures.map(
            (failure) => (failure as { response?: Response }).response?.status ?? failure,
          ),
          ...writer.results.map((result) => result.errors),
        ].flat();
        expect(JSON.stringify(errors)).toMatch(/FORBIDDEN|^\[403\]$/);
      }
    } finally {
      await Promise.all([reader, admin, writerWs, writerSse].map((subscriber) => subscriber.stop()));
    }
  });

  it('resumes subscribers from different cursors while events are written: each gets everything after its cursor, once, in order', async () => {
    const orderIds = [randomUUID(), randomUUID(), randomUUID()];
    await appendMixed(orderIds, [], 4);
    const before = await readableLog();
    const cursors = [before.at(-12), before.at(-7), before.at(-1)].map((event) => event?.cursor as string);
    const query = `subscription($after: String) { events(after: $after) { id cursor } }`;
    // Writing goes on while they subscribe, so some catch up across the seam to the live tail.
    const writing = appendMixed(orderIds, [], 10);
    const subscribers = cursors.flatMap((after, i) => [
      subscribe(i % 2 === 0 ? 'ws' : 'sse', readerKey, query, { after }),
      subscribe(i % 2 === 0 ? 'sse' : 'ws', readerKey, query, { after }),
    ]);
    try {
      await writing;
      const log = await readableLog();
      const expected = cursors.flatMap((cursor) => [eventsAfter(log, cursor), eventsAfter(log, cursor)]);
      await untilReceived(
        subscribers,
        expected.map((events) => events.length),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      subscribers.forEach((subscriber, i) => {
        const got = subscriber.results.map(
          (result) => (result.data?.events as { id?: string } | undefined)?.id,
        );
        expect(got).toEqual((expected[i] ?? []).map((event) => event.id));
      });
    } finally {
      await Promise.all(subscribers.map((subscriber) => subscriber.stop()));
    }
  });

  it('executes an event once for every subscriber of one selection: they get the very same result object', async () => {
    const api = createTestApi(database.db, database.url);
    /** Subscribes through the API's envelop, as both transports do, and returns the result iterator. */
    const open = async (query: string) => {
      const enveloped = api.yoga.getEnveloped({ correlationId: 'shared', principal: ANONYMOUS });
      const document = enveloped.parse(query);
      expect(enveloped.validate(enveloped.schema, document)).toEqual([]);
      const result = await enveloped.subscribe({
        schema: enveloped.schema,
        document,
        contextValue: await enveloped.contextFactory(),
      });
      const iterator = (result as AsyncIterable<{ data?: Record<string, unknown> }>)[Symbol.asyncIterator]();
      // The first next() attaches the feed; it resolves with the event written below.
      return { iterator, first: iterator.next() };
    };
    const same = [
      await open('subscription { events { id type } }'),
      await open('subscription { events { id type } }'),
      await open('subscription { events(filter: { streamType: "order" }) { id type } }'),
    ];
    const other = await open('subscription { events { id streamId } }');
    try {
      const deadline = Date.now() + 30_000;
      while (api.tailer.subscriberCount < 4) {
        if (Date.now() > deadline) throw new Error('feeds did not attach');
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      await appendMixed([randomUUID()], [], 1);
      const results = await Promise.all([...same, other].map(async (each) => (await each.first).value));
      const [first, second, filtered, different] = results;
      expect(first).toEqual({ data: { events: { id: expect.any(String), type: 'OrderPlaced' } } });
      expect(second).toBe(first);
      expect(filtered).toBe(first);
      expect(different).not.toBe(first);
      expect(different?.data?.events).toEqual({
        id: (first?.data?.events as { id?: string } | undefined)?.id,
        streamId: expect.any(String),
      });
    } finally {
      await Promise.all([...same, other].map((each) => each.iterator.return?.()));
      await api.close();
    }
  });
});
