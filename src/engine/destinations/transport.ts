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

/** Runs deliveries and remembers those in flight, so `close` can wait for them. */
export class InFlight {
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
