import { Writable } from 'node:stream';
import { type Client, type ClientOptions, createClient } from 'graphql-ws';
import { pino } from 'pino';
import WebSocket from 'ws';
import { createApiKey } from '../../src/auth/api-keys.ts';
import type { Db } from '../../src/db/database.ts';
import type { Logger } from '../../src/logger.ts';
import { count, waitForQuiet } from '../shop/shop-fixtures.ts';

/** API keys with one scope each (created through the real key service). */
export interface TestKeys {
  readonly writer: string;
  readonly reader: string;
  readonly admin: string;
}

/** Creates one key per scope. */
export async function createTestKeys(db: Db): Promise<TestKeys> {
  const [writer, reader, admin] = await Promise.all([
    createApiKey(db, { name: 'writer', scopes: ['orders:write'] }),
    createApiKey(db, { name: 'reader', scopes: ['events:read'] }),
    createApiKey(db, { name: 'admin', scopes: ['admin'] }),
  ]);
  return { writer: writer.key, reader: reader.key, admin: admin.key };
}

/** `Authorization: Bearer <token>`. */
export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** Counts that must not move when a request is refused. */
export async function footprint(db: Db): Promise<number[]> {
  await waitForQuiet(db);
  return Promise.all([count(db, 'shop.orders'), count(db, 'shop.products'), count(db, 'outbox.events')]);
}

/** A logger writing JSON lines into memory, for assertions on what the service logs. */
export function captureLogs(): { logger: Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  return {
    logger: pino({ level: 'debug' }, stream),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

/** `ws://…` for an `http://…` GraphQL URL. */
export const wsUrl = (httpUrl: string): string => httpUrl.replace(/^http/, 'ws');

/**
 * Opens a raw graphql-transport-ws connection, sends `connection_init` with `payload`, and reports how it
 * ended: `acked`, or the close code and reason.
 */
export async function connectRaw(
  url: string,
  payload: Record<string, unknown>,
): Promise<{ acked: true } | { acked: false; code: number; reason: string }> {
  const socket = new WebSocket(wsUrl(url), 'graphql-transport-ws');
  return new Promise((resolve, reject) => {
    socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload })));
    socket.once('error', reject);
    socket.on('message', (data) => {
      if ((JSON.parse(String(data)) as { type: string }).type === 'connection_ack') {
        resolve({ acked: true });
        socket.close();
      }
    });
    socket.once('close', (code, reason) => resolve({ acked: false, code, reason: String(reason) }));
  });
}

/** A graphql-ws client that does not retry (lazy: it connects for its first operation, closes after its last). */
export function wsClient(
  url: string,
  connectionParams: Record<string, unknown> = {},
  options: Partial<ClientOptions> = {},
): Client {
  return createClient({
    url: wsUrl(url),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams,
    ...options,
  });
}

/** A GraphQL result as a client receives it. */
export interface WireResult<T = Record<string, unknown>> {
  data?: T | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

/** Runs one query or mutation over WebSocket and returns its single result. */
export function wsOnce<T = Record<string, unknown>>(
  client: Client,
  query: string,
  variables?: Record<string, unknown>,
): Promise<WireResult<T>> {
  return new Promise((resolve, reject) => {
    let result: WireResult<T> = {};
    client.subscribe<T>(
      { query, ...(variables ? { variables } : {}) },
      {
        next: (value) => {
          result = value as WireResult<T>;
        },
        // graphql-ws reports operation errors (validation, limits) as an array of errors.
        error: (error) =>
          Array.isArray(error) ? resolve({ errors: error as WireResult['errors'] }) : reject(error),
        complete: () => resolve(result),
      },
    );
  });
}
