import type { Transaction } from 'kysely';
import type { OutboxDatabase } from '../db/database.ts';
import { HandlerTimeoutError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { type EventRegistry, type EventRow, toRecordedEvent } from '../outbox/read.ts';
import type { BatchItem, ConsumerDefinition } from './consumer.ts';
import type { Failure } from './failures.ts';
import { withHandlerSpan } from './handler-span.ts';
import { handlerContext } from './invoke-handler.ts';

/** One batch handler call: the batch's new events (first attempts) and the delivery transaction. */
export interface BatchHandlerCall {
  readonly consumer: ConsumerDefinition;
  readonly rows: readonly EventRow[];
  readonly trx: Transaction<OutboxDatabase>;
  readonly registry: EventRegistry;
  readonly logger: Logger;
}

/**
 * Calls a consumer's `handleBatch` once for `rows` (first deliveries, in log order): checks every payload
 * against its registered schema, runs the call in one trace span, and cuts it off at the consumer's
 * `timeoutMs`.
 *
 * A failure here names no event: the caller rolls the call's writes back and delivers the same events one
 * per call (each behind a savepoint), which attributes the failure — a payload that does not match its
 * schema included — to the event that causes it.
 *
 * Tracing: one span for the call (continuing the first event's trace); each event's context carries its
 * own stored traceparent, so events a handler appends continue the trace of the event that caused them.
 *
 * @returns the failure, or undefined when the call succeeded.
 */
export async function invokeBatchHandler(call: BatchHandlerCall): Promise<Failure | undefined> {
  const { consumer, rows } = call;
  const handleBatch = consumer.handleBatch;
  if (!handleBatch) throw new Error(`Consumer ${consumer.name} has no batch handler`);
  const first = rows[0];
  if (!first) return undefined;
  const controller = new AbortController();
  let items: BatchItem<unknown>[];
  try {
    items = rows.map((row) => ({
      event: toRecordedEvent(row, call.registry, { validate: true }),
      context: handlerContext({
        consumer,
        row,
        attempt: 1,
        signal: controller.signal,
        traceparent: typeof row.metadata.traceparent === 'string' ? row.metadata.traceparent : undefined,
        logger: call.logger,
      }),
    }));
  } catch (error) {
    // Which event does not match is for the per-event rerun to find and record (permanently).
    return { error: error as Error, poisonsTransaction: false, permanent: false };
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), consumer.timeoutMs);
  });
  try {
    const outcome = await withHandlerSpan(
      `${consumer.name} batch`,
      typeof first.metadata.traceparent === 'string' ? first.metadata.traceparent : undefined,
      { 'postbox.consumer': consumer.name, 'postbox.batch_size': String(rows.length) },
      // The handler's types are the application's (its events, its database): the values are these.
      () => Promise.race([handleBatch(items as never, call.trx as never), timedOut]),
    );
    if (outcome === 'timeout') {
      controller.abort();
      return {
        error: new HandlerTimeoutError(
          `${consumer.name} did not finish a batch of ${rows.length} events within ${consumer.timeoutMs} ms`,
        ),
        poisonsTransaction: true,
        permanent: false,
      };
    }
    return undefined;
  } catch (error) {
    return {
      error: error instanceof Error ? error : new Error(String(error)),
      // A query cancelled by statement_timeout (57014) means the handler hung in the database.
      poisonsTransaction: (error as { code?: string }).code === '57014',
      permanent: false,
    };
  } finally {
    clearTimeout(timer);
  }
}
