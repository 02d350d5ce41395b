import type { RecordedEvent } from '../outbox/event.ts';
import type { WebhookVerdict } from './webhook.ts';

/** How one delivery went, whatever the kind (HTTP for webhooks; the publish ack for the broker kinds). */
export interface TransportResult {
  readonly verdict: WebhookVerdict;
  /** The receiver's status, when it has one (HTTP). */
  readonly status: number | undefined;
  readonly durationMs: number;
  /** Why it was not delivered (undefined when delivered). */
  readonly error: string | undefined;
  readonly snippet: string;
  readonly retryAfterMs: number | undefined;
}

/**
 * What a destination kind implements: deliver one event, say how it went. Everything else — order,
 * retries, dead letters, the circuit, the attempt log — is the kind-independent part (`deliver.ts`).
 * Broker kinds answer `delivered` once the broker confirmed, `unavailable` when it did not.
 */
export interface DestinationTransport {
  /** Delivers one event; never rejects for a delivery failure (that is the result), only {@link TransportClosed}. */
  deliver(event: RecordedEvent): Promise<TransportResult>;
  /**
   * Releases the destination's connection once the deliveries in flight are done (on stop, and when the
   * destination is updated or deleted). Later calls to `deliver` throw {@link TransportClosed}.
   */
  close(): Promise<void>;
}

/** `deliver` on a transport that was closed (the destination changed meanwhile): the event waits, unharmed. */
export class TransportClosed extends Error {
  constructor(destination: string) {
    super(`destination ${destination} changed while delivering; the event is delivered by its new settings`);
  }
}

/** A delivery the broker confirmed. */
export function confirmed(started: number): TransportResult {
  return {
    verdict: 'delivered',
    status: undefined,
    durationMs: performance.now() - started,
    error: undefined,
    snippet: '',
    retryAfterMs: undefined,
  };
}

/** A publish the broker did not confirm: retried with backoff, counted by the circuit. */
export function unconfirmed(started: number, error: string): TransportResult {
  return {
    verdict: 'unavailable',
    status: undefined,
    durationMs: performance.now() - started,
    error,
    snippet: '',
    retryAfterMs: undefined,
  };
}

/**
 * What one broker kind supplies to {@link brokerTransport}: how to open its connection, how to publish one
 * event on it (resolving only once the broker confirmed), how to close it, and how to word a failure.
 */
export interface BrokerKind<Connection> {
  /**
   * Opens the destination's connection. `forget` drops it from the transport (when it is still the one in
   * use), so the next publish opens a new one: for clients that do not reconnect by themselves.
   */
  open(forget: () => void): Promise<Connection>;
  /** Publishes one event; resolves once the broker confirmed it, rejects otherwise. */
  publish(connection: Connection, event: RecordedEvent): Promise<void>;
  /** Releases the connection (errors are ignored). */
  close(connection: Connection): Promise<void>;
  /** The attempt log's wording of a failed publish (`NATS: …`, `RabbitMQ: …`, `Kafka: …`). */
  describe(error: unknown, event: RecordedEvent): string;
}

/**
 * The part every broker kind shares: one connection per destination, opened on the first delivery (a
 * failed open is forgotten, so the next delivery tries again) and kept; each delivery is `delivered` once
 * `publish` resolved and `unavailable` (retried with backoff, counted by the circuit) when it rejected;
 * `close` waits for the deliveries in flight, then closes the connection. Order is not this layer's: the
 * engine hands a transport the next event of a stream only after the previous one's result.
 */
export function brokerTransport<Connection>(
  destination: string,
  kind: BrokerKind<Connection>,
): DestinationTransport {
  const inFlight = new InFlight();
  let connection: Promise<Connection> | undefined;

  const open = (): Promise<Connection> => {
    if (connection) return connection;
    const opening: Promise<Connection> = kind
      .open(() => {
        if (connection === opening) connection = undefined;
      })
      .catch((error: unknown) => {
        if (connection === opening) connection = undefined;
        throw error;
      });
    connection = opening;
    return opening;
  };

  const publish = async (event: RecordedEvent): Promise<TransportResult> => {
    const started = performance.now();
    try {
      await kind.publish(await open(), event);
      return confirmed(started);
    } catch (error) {
      return unconfirmed(started, kind.describe(error, event));
    }
  };

  return {
    deliver(event) {
      if (inFlight.closed) throw new TransportClosed(destination);
      return inFlight.track(publish(event));
    },
    async close() {
      await inFlight.settle();
      const current = connection;
      connection = undefined;
      const opened = await current?.catch(() => undefined);
      if (opened !== undefined) await kind.close(opened).catch(() => {});
    },
  };
}

/** The message of an error, whatever was thrown. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs deliveries and remembers those in flight, so `close` can wait for them. */
class InFlight {
  readonly #pending = new Set<Promise<unknown>>();
  closed = false;

  track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise);
    void promise.finally(() => this.#pending.delete(promise)).catch(() => {});
    return promise;
  }

  /** Marks closed and waits for what is in flight. */
  async settle(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.#pending]);
  }
}
