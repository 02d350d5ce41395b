import { randomUUID } from 'node:crypto';
import { type IncomingMessage, request } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { z } from 'zod';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { defineEvent } from '../../src/engine/outbox/event.ts';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import { captureLogs, wsClient, wsUrl } from './hardening-fixtures.ts';

/** A test event with a fat payload: a few dozen fill any socket buffer. */
const Blob = defineEvent({ type: 'Blob', streamType: 'blob', schema: z.object({ data: z.string() }) });
const BLOB_BYTES = 200 * 1024;
const BLOBS_PER_BATCH = 20;

let database: TestDatabase;
let server: ApiServer;
const logs = captureLogs();

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startApiServer({
    db: database.db,
    connectionString: database.url,
    logger: logs.logger,
    auth: { enabled: false },
    host: '127.0.0.1',
    port: 0,
    feed: { pollIntervalMs: 25 },
    slowClients: { sendTimeoutMs: 500, graceMs: 10_000 },
  });
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

/** Appends batches of fat events until `stop()` says enough (or a generous cap is reached). */
async function produceUntil(stop: () => boolean, maxBatches = 40): Promise<number> {
  let appended = 0;
  for (let batch = 0; batch < maxBatches && !stop(); batch++) {
    const events = Array.from({ length: BLOBS_PER_BATCH }, (_, i) =>
      Blob.create(randomUUID(), { data: `${batch}:${i}:`.padEnd(BLOB_BYTES, 'x') }),
    );
    await database.db.transaction().execute((trx) => appendEvents(trx, events));
    appended += events.length;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return appended;
}

const cutLogged = (transport: string) =>
  logs
    .lines()
    .find((line) => line.msg === 'disconnecting a client too slow to read' && line.transport === transport);

describe('slow subscribers are disconnected with a reason instead of buffering without limit', () => {
  it('a WebSocket client that stops reading is closed with 4008, while a reading client keeps up', async () => {
    // A client that reads everything, on the same server.
    const fast = wsClient(server.url);
    let fastReceived = 0;
    const fastDone = fast.subscribe(
      { query: 'subscription { events(filter: { streamType: "blob" }) { id payload } }' },
      { next: () => void fastReceived++, error: () => undefined, complete: () => undefined },
    );

    const socket = new WebSocket(wsUrl(server.url), 'graphql-transport-ws');
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
    );
    await new Promise<void>((resolve) => {
      socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: {} })));
      socket.on('message', (data) => {
        if ((JSON.parse(String(data)) as { type: string }).type === 'connection_ack') resolve();
      });
    });
    socket.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: 'subscription { events(filter: { streamType: "blob" }) { id payload } }' },
      }),
    );
    await waitFor('the subscriptions to start', async () => server.api.tailer.subscriberCount === 2);
    // Stop reading: from here on the server's sends pile up in the kernel, then in the socket.
    (socket as unknown as { _socket: Socket })._socket.pause();

    const appended = await produceUntil(() => cutLogged('websocket') !== undefined);
    const cut = await waitFor('the server to cut the slow client', async () => cutLogged('websocket'));
    expect(cut).toMatchObject({ level: 40, reason: expect.stringMatching(/^client too slow: /) });
    // Its subscription is released at once, not when the socket finally closes.
    await waitFor('the slow subscription to end', async () => server.api.tailer.subscriberCount === 1);

    // The client reads again: it gets what was sent, then the close frame with the reason.
    (socket as unknown as { _socket: Socket })._socket.resume();
    expect(await closed).toEqual({
      code: 4008,
      reason: expect.stringMatching(/^client too slow: nothing read for/),
    });

    // The reading client was not held back.
    await waitFor('the reading client to get every event', async () => fastReceived === appended);
    fastDone();
    await fast.dispose();
  });

  it('a WebSocket client falling more than maxBufferedBytes behind is closed with 4008 at once', async () => {
    const strict = await startApiServer({
      db: database.db,
      logger: logs.logger,
      auth: { enabled: false },
      host: '127.0.0.1',
      port: 0,
      feed: { pollIntervalMs: 25 },
      slowClients: { maxBufferedBytes: 64 * 1024, sendTimeoutMs: 60_000 },
    });
    try {
      const socket = new WebSocket(wsUrl(strict.url), 'graphql-transport-ws');
      const closed = new Promise<{ code: number; reason: string }>((resolve) =>
        socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
      );
      await new Promise<void>((resolve) => {
        socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: {} })));
        socket.on('message', (data) => {
          if ((JSON.parse(String(data)) as { type: string }).type === 'connection_ack') resolve();
        });
      });
      // Two subscriptions: while one's message waits for the client, the other's finds it queued.
      for (const id of ['a', 'b']) {
        socket.send(
          JSON.stringify({
            id,
            type: 'subscribe',
            payload: { query: 'subscription { events(filter: { streamType: "blob" }) { id payload } }' },
          }),
        );
      }
      await waitFor('the subscriptions to start', async () => strict.api.tailer.subscriberCount === 2);
      (socket as unknown as { _socket: Socket })._socket.pause();
      const cutByBytes = () =>
        logs.lines().find((line) => typeof line.reason === 'string' && /bytes unread$/.test(line.reason));
      await produceUntil(() => cutByBytes() !== undefined);
      await waitFor('the server to cut the client', async () => cutByBytes());
      await waitFor('its subscriptions to end', async () => strict.api.tailer.subscriberCount === 0);
      (socket as unknown as { _socket: Socket })._socket.resume();
      expect(await closed).toEqual({
        code: 4008,
        reason: expect.stringMatching(/^client too slow: \d+ bytes unread$/),
      });
    } finally {
      await strict.close();
    }
  });

  it('an SSE client that stops reading gets a final CLIENT_TOO_SLOW error and the stream ends', async () => {
    const url = new URL(server.url);
    const chunks: Buffer[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        },
        (response) => {
          expect(response.statusCode).toBe(200);
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', resolve);
          response.on('error', resolve);
          response.on('close', resolve);
          // Stop reading as soon as the stream is open.
          response.socket.pause();
          response.pause();
          streamOpen(response);
        },
      );
      req.on('error', reject);
      req.end(
        JSON.stringify({ query: 'subscription { events(filter: { streamType: "blob" }) { id payload } }' }),
      );
    });
    let streamOpen: (response: IncomingMessage) => void = () => undefined;
    const opened = new Promise<IncomingMessage>((resolve) => {
      streamOpen = resolve;
    });
    const response = await opened;
    await waitFor('the SSE subscription to start', async () => server.api.tailer.subscriberCount >= 1);

    await produceUntil(() => cutLogged('sse') !== undefined);
    await waitFor('the server to cut the slow SSE client', async () => cutLogged('sse'));

    response.socket.resume();
    response.resume();
    await ended;
    const text = Buffer.concat(chunks).toString('utf8');
    const messages = text.split('\n\n').filter((message) => message.startsWith('event:'));
    const last = messages.at(-1);
    const final = messages.at(-2);
    expect(last).toBe('event: complete\ndata:');
    expect(final?.startsWith('event: next\ndata: ')).toBe(true);
    expect(JSON.parse((final as string).slice('event: next\ndata: '.length))).toEqual({
      errors: [
        {
          message: expect.stringMatching(/^client too slow: /),
          extensions: { code: 'CLIENT_TOO_SLOW' },
        },
      ],
    });
    await waitFor('the slow SSE subscription to end', async () => server.api.tailer.subscriberCount === 0);
  });
});
