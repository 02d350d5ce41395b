import type { Transaction } from 'kysely';
import type { OutboxDatabase } from '../db/database.ts';
import { HandlerTimeoutError, ValidationError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { RecordedEvent } from '../outbox/event.ts';
import { type EventRegistry, type EventRow, toRecordedEvent } from '../outbox/read.ts';
import type { ConsumerDefinition, HandlerContext } from './consumer.ts';
import { DeliveryDeferred, type Failure } from './failures.ts';
import { withHandlerSpan } from './handler-span.ts';

/** One handler call: the event, the attempt and the delivery transaction it runs in. */
export interface HandlerCall {
  readonly consumer: ConsumerDefinition;
  readonly row: EventRow;
  readonly attempt: number;
  readonly trx: Transaction<OutboxDatabase>;
  readonly registry: EventRegistry;
  readonly logger: Logger;
}

/**
 * Calls a consumer's handler for one event: checks the payload against its registered schema, runs the
 * handler in a trace span with its context, and cuts it off at the consumer's timeout.
 *
 * @returns the failure, or undefined when the handler succeeded.
 */
export async function invokeHandler(call: HandlerCall): Promise<Failure | undefined> {
  const { consumer, row, attempt } = call;
  let event: RecordedEvent;
  try {
    // Events appended through SQL were not checked against the TypeScript schema at write: a payload that
    // does not match never reaches a handler, and retrying cannot fix it.
    event = toRecordedEvent(row, call.registry, { validate: true });
  } catch (error) {
    const cause = error as Error;
    const field = error instanceof ValidationError ? error.field : undefined;
    return {
      error: new ValidationError(
        `${row.type} event ${row.id} does not match its registered schema: ${cause.message}`,
        field,
      ),
      poisonsTransaction: false,
      permanent: true,
    };
  }
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), consumer.timeoutMs);
  });
  try {
    const outcome = await withHandlerSpan(
      `${consumer.name} ${row.type}`,
      typeof row.metadata.traceparent === 'string' ? row.metadata.traceparent : undefined,
      { 'postbox.consumer': consumer.name, 'postbox.event_id': row.id, 'postbox.event_type': row.type },
      (traceparent) => {
        const context = handlerContext({
          consumer,
          row,
          attempt,
          signal: controller.signal,
          traceparent,
          logger: call.logger,
        });
        // The handler's types are the application's (its events, its database): the values are these.
        return Promise.race([consumer.handle(event as never, call.trx as never, context), timedOut]);
      },
    );
    if (outcome === 'timeout') {
      controller.abort();
      return {
        error: new HandlerTimeoutError(
          `${consumer.name} did not finish ${row.type} within ${consumer.timeoutMs} ms`,
        ),
        poisonsTransaction: true,
        permanent: false,
      };
    }
    return undefined;
  } catch (error) {
    const err = error instanceof Error ? error : new Error(String(error));
    if (error instanceof DeliveryDeferred && consumer.deliversOutside) {
      return { error: err, poisonsTransaction: false, permanent: false, deferUntil: error.until };
    }
    const retryAfterMs = (error as { retryAfterMs?: unknown }).retryAfterMs;
    // A query cancelled by statement_timeout (57014) means the handler hung in the database.
    return {
      error: err,
      poisonsTransaction: (error as { code?: string }).code === '57014',
      permanent: false,
      ...(typeof retryAfterMs === 'number' && retryAfterMs > 0 ? { retryAfterMs } : {}),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** What {@link handlerContext} builds a context from. */
export interface HandlerContextSource {
  readonly consumer: ConsumerDefinition;
  readonly row: EventRow;
  readonly attempt: number;
  readonly signal: AbortSignal;
  /** Stored on events the handler appends (the handler's span, or the event's own trace). */
  readonly traceparent: string | undefined;
  readonly logger: Logger;
}

/** The {@link HandlerContext} of one event's delivery (shared by per-event and batch invocation). */
export function handlerContext(source: HandlerContextSource): HandlerContext {
  const { consumer, row, attempt, traceparent } = source;
  const correlationId =
    typeof row.metadata.correlationId === 'string' ? row.metadata.correlationId : undefined;
  return {
    consumer: consumer.name,
    attempt,
    idempotencyKey: `${consumer.name}:${row.id}`,
    signal: source.signal,
    causedBy: {
      ...(correlationId ? { correlationId } : {}),
      causationId: row.id,
      actor: `consumer:${consumer.name}`,
      ...(traceparent ? { traceparent } : {}),
    },
    logger: source.logger.child({
      consumer: consumer.name,
      eventId: row.id,
      eventType: row.type,
      ...(correlationId ? { correlationId } : {}),
    }),
  };
}
