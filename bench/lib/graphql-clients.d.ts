/**
 * POSTs one operation (GraphQL over HTTP, the global fetch) and returns `data`; throws on an HTTP or
 * GraphQL error, with the server's messages.
 */
export declare function postGraphql<T>(
  url: string,
  query: string,
  variables?: Readonly<Record<string, unknown>>,
): Promise<T>;
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
export declare function subscribeOver(
  transport: Transport,
  url: string,
  request: {
    readonly query: string;
    readonly variables?: Readonly<Record<string, unknown>>;
  },
  sink: SubscriptionSink,
): Subscriber;
/** A readable line for what a subscription's `error` got (an Error, a close event, GraphQL errors). */
export declare function describeError(error: unknown): string;
//# sourceMappingURL=graphql-clients.d.ts.map
