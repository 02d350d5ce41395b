import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import WebSocket from 'ws';
/**
 * POSTs one operation (GraphQL over HTTP, the global fetch) and returns `data`; throws on an HTTP or
 * GraphQL error, with the server's messages.
 */
export async function postGraphql(url, query, variables) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors?.length || !body.data) {
    throw new Error(
      `GraphQL request failed (${response.status}): ${body.errors?.map((e) => e.message).join('; ') ?? 'no data'}`,
    );
  }
  return body.data;
}
/**
 * Subscribes as an independent client over its own connection: a graphql-ws client (package `ws`) with one
 * WebSocket, or a graphql-sse client in distinct-connections mode (one HTTP request with an event stream,
 * through the global fetch). Neither retries: a dropped connection is reported to `error`, never papered
 * over by a reconnect that could skip or repeat events.
 */
export function subscribeOver(transport, url, request, sink) {
  const forward = {
    next: (result) => {
      if (result.errors) sink.error(result.errors);
      else if (result.data) sink.next(result.data);
    },
    error: (error) => sink.error(error),
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
export function describeError(error) {
  if (error instanceof Error) return error.message;
  const close = error;
  if (typeof close?.code === 'number') return `connection closed (${close.code} ${close.reason ?? ''})`;
  return JSON.stringify(error);
}
//# sourceMappingURL=graphql-clients.js.map
