import { sql } from 'kysely';
import type { ConsumerDefinition, HandlerContext } from '../consumers/consumer.ts';
import { DeliveryDeferred } from '../consumers/failures.ts';
import type { EngineDb } from '../db/database.ts';
import { DEFAULTS } from '../defaults.ts';
import type { Logger } from '../logger.ts';
import type { RecordedEvent } from '../outbox/event.ts';
import { WAKE_CHANNEL } from '../outbox/wake-channel.ts';
import type { AttemptRecord } from './attempt-log.ts';
import type { Circuit } from './circuit.ts';
import { toCloudEvent } from './cloud-event.ts';
import type { StoredDestination } from './stored-destination.ts';
import { type DestinationTransport, TransportClosed, type TransportResult } from './transport.ts';

export type { DestinationTransport, TransportResult } from './transport.ts';

import {
  classifyResponse,
  type WebhookResponse,
  type WebhookSender,
  type WebhookVerdict,
} from './webhook.ts';

/** What a destination's delivery reports per request (metrics, logs, the attempt log). */
export interface DestinationAttempt extends AttemptRecord {
  readonly verdict: WebhookVerdict;
  /** The circuit after this attempt, when it moved or was read. */
  readonly circuit: 'closed' | 'open' | 'half_open' | undefined;
}

/** What a destination's handler works with. */
export interface DeliveryDeps {
  readonly db: EngineDb;
  readonly sender: WebhookSender;
  readonly logger: Logger;
  readonly onAttempt: (attempt: DestinationAttempt) => void;
}

/** A delivery failed; `retryAfterMs` carries the receiver's `Retry-After`. */
export class DestinationDeliveryError extends Error {
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, status: number | undefined, retryAfterMs: number | undefined) {
    super(message);
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The signing secrets in force: the current one, and the previous one until its overlap ends. */
export function signingSecrets(destination: StoredDestination, now = Date.now()): string[] {
  const secrets = [destination.signingSecret];
  if (
    destination.previousSecret &&
    destination.previousExpiresAt &&
    destination.previousExpiresAt.getTime() > now
  )
    secrets.push(destination.previousSecret);
  return secrets;
}

/** A one-line account of a response that was not a 2xx (stored as the attempt's and the dead letter's error). */
export function describeResponse(response: WebhookResponse): string {
  if (response.status === undefined) return response.error?.message ?? 'no response';
  const snippet = response.snippet.replace(/\s+/g, ' ').trim();
  return `HTTP ${response.status}${snippet ? `: ${snippet}` : ''}`;
}

/** The webhook kind: one signed POST of the event as a CloudEvent. */
export function webhookTransport(
  destination: StoredDestination,
  sender: WebhookSender,
): DestinationTransport {
  return {
    async deliver(event) {
      const response = await sender.send({
        url: destination.settings.url,
        id: event.id,
        body: toCloudEvent(event),
        secrets: signingSecrets(destination),
        headers: destination.headers,
        timeoutMs: destination.settings.timeoutMs,
      });
      const verdict = classifyResponse(response.status);
      return {
        verdict,
        status: response.status,
        durationMs: response.durationMs,
        error: verdict === 'delivered' ? undefined : describeResponse(response),
        snippet: response.snippet,
        retryAfterMs: response.retryAfterMs,
      };
    },
    // The sender (its keep-alive agent) is the process's, shared by every webhook destination.
    async close() {},
  };
}

/**
 * A destination as a consumer: the engine's drain gives it partitions by stream, per-stream order,
 * checkpoints, retries with backoff, dead letters, redrive, replay, pause and lag; its handler only
 * delivers one event through the kind's transport and says how it went.
 *
 * Effectively once: the request is sent while the delivery transaction is open but is not part of it, so a
 * crash between the receiver's 2xx and the commit sends the event again. Every request of one event carries
 * the same `webhook-id` (the event id): receivers deduplicate on it.
 */
export function destinationConsumer(
  destination: StoredDestination,
  circuit: Circuit,
  deps: DeliveryDeps,
  transport: DestinationTransport,
  /**
   * Whether the destination is still active as this process last read it: a batch in flight when an
   * operator pauses or deletes the destination stops at its next event instead of sending the rest.
   */
  isActive: () => boolean = () => true,
): ConsumerDefinition {
  const timeoutMs = destination.settings.timeoutMs;
  const handle = async (event: RecordedEvent, _trx: unknown, context: HandlerContext): Promise<void> => {
    if (!isActive()) {
      // Paused, disabled or deleted meanwhile: the event waits after the checkpoint (no attempt used).
      throw new DeliveryDeferred(new Date(Date.now() + 60_000), `${destination.name} is not active`);
    }
    const admission = await circuit.admit(); // throws DeliveryDeferred while the circuit is open
    let result: TransportResult;
    try {
      result = await transport.deliver(event);
    } catch (error) {
      if (!(error instanceof TransportClosed)) throw error;
      // Not the receiver's doing: no attempt used, the circuit untouched (a probe's lease runs out).
      throw new DeliveryDeferred(new Date(Date.now() + 100), error.message);
    }
    const { verdict, error } = result;
    let circuitState: DestinationAttempt['circuit'];
    let deferUntil: Date | undefined;
    if (verdict === 'unavailable') {
      const row = await circuit.failed(admission, error ?? 'failed');
      circuitState = row?.state;
      // The failure that opened the circuit (or the failed probe) is the outage, not the event's fault:
      // it waits for the circuit without using an attempt.
      if (row && row.state === 'open' && row.open_until) deferUntil = row.open_until;
    } else {
      await circuit.succeeded(admission);
      if (admission === 'probe') circuitState = 'closed';
    }
    if (verdict === 'gone') {
      await disableDestination(deps.db, destination.name, `HTTP 410 Gone from ${destination.settings.url}`);
      deferUntil = new Date(Date.now() + 86_400_000);
    }
    deps.onAttempt({
      destination: destination.name,
      eventId: event.id,
      attempt: context.attempt,
      outcome: verdict === 'delivered' ? 'delivered' : deferUntil ? 'deferred' : 'failed',
      status: result.status,
      durationMs: result.durationMs,
      error,
      responseSnippet: result.snippet || undefined,
      at: new Date(),
      verdict,
      circuit: circuitState,
    });
    if (verdict === 'delivered') return;
    if (deferUntil) throw new DeliveryDeferred(deferUntil, error ?? 'deferred');
    throw new DestinationDeliveryError(error ?? 'failed', result.status, result.retryAfterMs);
  };
  return Object.freeze({
    name: destination.name,
    eventTypes: [...destination.eventTypes],
    definitions: [],
    streamTypes: destination.streamTypes ?? undefined,
    partitions: destination.partitions,
    retry: destination.retry,
    onExhausted: destination.onExhausted,
    startFrom: 'now',
    batchSize: DEFAULTS.destination.batchSize,
    batchBytes: DEFAULTS.consumer.batchBytes,
    // The request's own timeout always comes first; past this the engine abandons the transaction.
    timeoutMs: timeoutMs + 5000,
    deliversOutside: true,
    // A checkpoint lost in a server crash would send the deliveries again: keep commits durable.
    asyncCommit: false,
    handle: handle as ConsumerDefinition['handle'],
  });
}

/** 410 Gone: the destination stops (state `disabled`) until an operator resumes it. */
export async function disableDestination(db: EngineDb, name: string, reason: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`update outbox.destinations set state = 'disabled', state_reason = ${reason}, updated_at = now()
              where name = ${name}`.execute(trx);
    await sql`update outbox.consumers set status = 'paused', updated_at = now() where name = ${name}`.execute(
      trx,
    );
    await sql`select pg_notify(${WAKE_CHANNEL}, 'destinations')`.execute(trx);
  });
}
