import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import WebSocket from 'ws';

/** A GraphQL response body. */
interface GraphqlBody<T> {
  data?: T | null;
  errors?: Array<{ message: string }>;
}

/**
 * POSTs one operation (GraphQL over HTTP, the global fetch) and returns `data`; throws on an HTTP or
 * GraphQL error, with the server's messages.
 */
export async function postGraphql<T>(
  url: string,
  query: string,
  variables?: Readonly<Record<string, unknown>>,
): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as GraphqlBody<T>;
  if (body.errors?.length || !body.data) {
    throw new Error(
      `GraphQL request failed (${response.status}): ${body.errors?.map((e) => e.message).join('; ') ?? 'no data'}`,
    );
  }
  return body.data;
}

/** How a subscription is carried. */
export type Transport = 'sse' | 'ws';

/** Callbacks of {@link subscribeOver}. */
export interface SubscriptionSink {
  /** Each result's `data` (results carrying errors go to `error` instead). */
  next(data: Record<string, unknown>): void;
  error(error: unknown): void;
  complete(): void;
}

/** One subscriber: its own client and connection. */
export interface Subscriber {
  readonly transport: Transport;
  /** Unsubscribes and closes the connection. */
  close(): Promise<void>;
}

/**
 * Subscribes as an independent client over its own connection: a graphql-ws client (package `ws`) with one
 * WebSocket, or a graphql-sse client in distinct-connections mode (one HTTP request with an event stream,
 * through the global fetch). Neither retries: a dropped connection is reported to `error`, never papered
 * over by a reconnect that could skip or repeat events.
 */
export function subscribeOver(
  transport: Transport,
  url: string,
  request: { readonly query: string; readonly variables?: Readonly<Record<string, unknown>> },
  sink: SubscriptionSink,
): Subscriber {
  const forward = {
    next: (result: { data?: unknown; errors?: unknown }) => {
      if (result.errors) sink.error(result.errors);
      else if (result.data) sink.next(result.data as Record<string, unknown>);
    },
    error: (error: unknown) => sink.error(error),
    complete: () => sink.complete(),
  };
  const payload = { query: request.query, variables: { ...request.variables } };
  if (transport === 'ws') {
    const client = createWsClient({
      url: url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
    });
    const unsubscribe = client.subscribe(payload, forward);
    return {
      transport,
      async close() {
        unsubscribe();
        await client.dispose();
      },
    };
  }
  const client = createSseClient({ url, retryAttempts: 0 });
  const unsubscribe = client.subscribe(payload, forward);
  return {
    transport,
    async close() {
      unsubscribe();
      client.dispose();
    },
  };
}

/** A readable line for what a subscription's `error` got (an Error, a close event, GraphQL errors). */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  const close = error as { code?: number; reason?: string };
  if (typeof close?.code === 'number') return `connection closed (${close.code} ${close.reason ?? ''})`;
  return JSON.stringify(error);
}
