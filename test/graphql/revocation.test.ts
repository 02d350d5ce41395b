import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createApiKey, revokeApiKey } from '../../src/auth/api-keys.ts';
import { createJwtVerifier } from '../../src/auth/jwt.ts';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { wsUrl } from '../hardening/hardening-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import { count } from '../shop/shop-fixtures.ts';

const JWT_SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const RECHECK_MS = 200;

let database: TestDatabase;
let server: ApiServer;

beforeAll(async () => {
  database = await createTestDatabase();
  const auth = { enabled: true, jwt: await createJwtVerifier({ hs256Secret: JWT_SECRET }) };
  server = await startApiServer({
    db: database.db,
    connectionString: database.url,
    logger: silentLogger,
    auth,
    host: '127.0.0.1',
    port: 0,
    feed: { pollIntervalMs: 25 },
    credentialRecheckMs: RECHECK_MS,
  });
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

/** A raw graphql-transport-ws socket: messages received, and how it closed. */
async function openSocket(payload: Record<string, unknown>) {
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
  socket.send(JSON.stringify({ type: 'connection_init', payload }));
  await waitFor('connection_ack', async () => messages.some((message) => message.type === 'connection_ack'));
  const send = (id: string, query: string, variables?: Record<string, unknown>) =>
    socket.send(JSON.stringify({ type: 'subscribe', id, payload: { query, variables } }));
  return { socket, messages, closed, send };
}

const ADD_PRODUCT = `mutation($sku: String!) {
  addProduct(input: { sku: $sku, name: "Keyboard", priceCents: 100, stock: 1 }) { __typename }
}`;

describe('revocation reaches open WebSocket connections', () => {
  it('an operation sent after `keys revoke` on an already open socket writes nothing, and the socket is closed with 4401', async () => {
    const { id, key } = await createApiKey(database.db, { name: 'ops', scopes: ['admin'] });
    const ws = await openSocket({ authorization: `Bearer ${key}` });
    ws.send('1', ADD_PRODUCT, { sku: 'REV-1' });
    await waitFor('the first mutation', async () =>
      ws.messages.some((m) => m.id === '1' && m.type === 'next'),
    );
    expect(await count(database.db, 'shop.products')).toBe(1);

    await revokeApiKey(database.db, id);
    ws.send('2', ADD_PRODUCT, { sku: 'REV-2' });
    const closed = await ws.closed;
    expect(closed.code).toBe(4401);
    // Nothing written by the revoked key.
    expect(await count(database.db, 'shop.products')).toBe(1);
    expect(ws.messages.some((m) => m.id === '2' && m.type === 'next')).toBe(false);
  });

  it('an idle socket with a live subscription is closed with 4401 within a small bound after revocation', async () => {
    const { id, key } = await createApiKey(database.db, { name: 'feed', scopes: ['events:read'] });
    const ws = await openSocket({ apiKey: key });
    ws.send('s', 'subscription { events { id } }');
    await waitFor('the subscription to start', async () => server.api.tailer.subscriberCount >= 1);
    const revokedAt = Date.now();
    await revokeApiKey(database.db, id);
    const closed = await ws.closed;
    expect(closed.code).toBe(4401);
    // The recheck interval plus scheduling slack on a loaded machine.
    expect(Date.now() - revokedAt).toBeLessThan(RECHECK_MS + 5_000);
  });

  it('a JWT that expires while the socket is open: the socket closes with 4401 at expiry', async () => {
    const expiresAt = Math.floor(Date.now() / 1000) + 2;
    const token = await new SignJWT({ scope: 'events:read' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('user-7')
      .setIssuedAt()
      .setExpirationTime(expiresAt)
      .sign(new TextEncoder().encode(JWT_SECRET));
    const ws = await openSocket({ authorization: `Bearer ${token}` });
    ws.send('q', '{ logHead }');
    await waitFor('the first query', async () => ws.messages.some((m) => m.id === 'q' && m.type === 'next'));
    const closed = await ws.closed;
    expect(closed.code).toBe(4401);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt * 1000 - 1000);
    expect(Date.now()).toBeLessThan(expiresAt * 1000 + RECHECK_MS + 5_000);
  });
});

describe('revocation reaches open SSE streams', () => {
  it('an SSE `events` stream of a revoked key ends with an UNAUTHENTICATED error event', async () => {
    const { id, key } = await createApiKey(database.db, { name: 'sse', scopes: ['events:read'] });
    const response = await fetch(server.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        authorization: `Bearer ${key}`,
      },
      body: JSON.stringify({ query: 'subscription { events { id } }' }),
    });
    expect(response.status).toBe(200);
    await waitFor('the SSE subscription to start', async () => server.api.tailer.subscriberCount >= 1);
    await revokeApiKey(database.db, id);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    const deadline = Date.now() + RECHECK_MS + 10_000;
    for (;;) {
      const { value, done } = await Promise.race([
        reader.read(),
        new Promise<{ value: undefined; done: true }>((resolve) =>
          setTimeout(() => resolve({ value: undefined, done: true }), Math.max(0, deadline - Date.now())),
        ),
      ]);
      if (done) break;
      text += decoder.decode(value, { stream: true });
      if (text.includes('event: complete')) break;
    }
    await reader.cancel().catch(() => undefined);
    expect(text).toContain('UNAUTHENTICATED');
    expect(text).toContain('event: complete');
  });
});
