import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createApiKey } from '../../src/auth/api-keys.ts';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { wsUrl } from '../hardening/hardening-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import { gql } from './graphql-fixtures.ts';

let database: TestDatabase;
let server: ApiServer;
let key: string;

beforeAll(async () => {
  database = await createTestDatabase();
  key = (await createApiKey(database.db, { name: 'feed', scopes: ['events:read'] })).key;
  server = await startApiServer({
    db: database.db,
    connectionString: database.url,
    logger: silentLogger,
    auth: { enabled: true },
    host: '127.0.0.1',
    port: 0,
    rateLimitPerMinute: 100_000,
    feed: { pollIntervalMs: 25 },
    maxSubscriptionsPerPrincipal: 3,
    maxConnectionsPerPrincipal: 2,
  });
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

const auth = () => ({ authorization: `Bearer ${key}` });

async function openSocket() {
  const socket = new WebSocket(wsUrl(server.url), 'graphql-transport-ws');
  const messages: Array<{ type: string; id?: string; payload?: unknown }> = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  socket.on('message', (data) => messages.push(JSON.parse(String(data))));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  socket.send(JSON.stringify({ type: 'connection_init', payload: auth() }));
  return { socket, messages, closed };
}

describe('bounded filters', () => {
  const many = Array.from({ length: 50_000 }, (_, i) => `Type${i}`);

  it('a 50,000-entry types list is refused, for the connection and for a subscription', async () => {
    const query = await gql(
      server.url,
      'query($types: [String!]) { events(filter: { types: $types }) { edges { cursor } } }',
      { types: many },
      auth(),
    );
    expect(query.body.errors?.[0]?.message).toMatch(/types/);
    expect(query.body.data ?? null).toBeNull();

    const ws = await openSocket();
    await waitFor('ack', async () => ws.messages.some((m) => m.type === 'connection_ack'));
    ws.socket.send(
      JSON.stringify({
        type: 'subscribe',
        id: 'big',
        payload: {
          query: 'subscription($t: [String!]) { events(filter: { types: $t }) { id } }',
          variables: { t: many },
        },
      }),
    );
    // Refused when the subscription starts: one result carrying the error (`next`), or an `error` message.
    await waitFor('the refusal', async () =>
      ws.messages.some((m) => m.id === 'big' && JSON.stringify(m.payload ?? '').includes('filter.types')),
    );
    expect(server.api.tailer.subscriberCount).toBe(0);
    ws.socket.close();
  });

  it('an overlong filter string is refused', async () => {
    const response = await gql(
      server.url,
      'query($s: String) { events(filter: { streamId: $s }) { edges { cursor } } }',
      { s: 'x'.repeat(10_000) },
      auth(),
    );
    expect(response.body.errors?.[0]?.message).toMatch(/streamId/);
  });
});

describe('per-principal caps', () => {
  it('subscriptions are capped per principal across connections, and connections per principal too', async () => {
    const a = await openSocket();
    const b = await openSocket();
    await waitFor('acks', async () =>
      [a, b].every((ws) => ws.messages.some((m) => m.type === 'connection_ack')),
    );
    const subscribe = (ws: typeof a, id: string) =>
      ws.socket.send(
        JSON.stringify({ type: 'subscribe', id, payload: { query: 'subscription { events { id } }' } }),
      );
    subscribe(a, '1');
    subscribe(a, '2');
    subscribe(b, '3');
    await waitFor('three subscriptions', async () => server.api.tailer.subscriberCount >= 3);
    subscribe(b, '4');
    await waitFor(
      'the fourth refused',
      async () => {
        return b.messages.some(
          (m) => m.id === '4' && JSON.stringify(m.payload ?? '').includes('TOO_MANY_SUBSCRIPTIONS'),
        );
      },
      6000,
    );
    expect(server.api.tailer.subscriberCount).toBe(3);

    const c = await openSocket();
    expect((await c.closed).code).toBe(4429);
    a.socket.close();
    b.socket.close();
  });
});
