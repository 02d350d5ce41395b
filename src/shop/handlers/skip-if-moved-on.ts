import type { BatchItem, HandlerContext } from '../../engine/index.ts';
import { IllegalStateError } from '../../engine/index.ts';
import type { OrderStep, TransitionOrdersResult } from '../order.service.ts';

/**
 * Runs a handler's order transition; when the order is no longer in a state the step applies to (cancelled
 * meanwhile, or this event was already acted on), logs and returns normally, so the event counts as handled
 * instead of being retried forever. Every other error propagates (rollback and retry).
 */
export async function skipIfMovedOn(context: HandlerContext, step: () => Promise<unknown>): Promise<void> {
  try {
    await step();
  } catch (error) {
    if (!(error instanceof IllegalStateError)) throw error;
    context.logger.debug({ reason: error.message }, 'order moved on; nothing to do');
  }
}

/** A step of a batch handler's {@link transitionOrders}: the order, its event's metadata and context. */
export interface HandlerStep extends OrderStep {
  readonly context: HandlerContext;
}

/** The steps of a batch of order events, in delivery order. */
export function handlerSteps<E extends { readonly payload: { readonly orderId: string } }>(
  items: readonly BatchItem<E>[],
): HandlerStep[] {
  return items.map(({ event, context }) => ({
    orderId: event.payload.orderId,
    metadata: context.causedBy,
    context,
  }));
}

/**
 * Runs a batch handler's transitions. Orders that moved on are skipped (and logged) by
 * `transitionOrders` itself; an {@link IllegalStateError} it throws (the stream moved on under the lock)
 * fails a batch of several events — rerun one per call, where it is skipped for its own event alone.
 */
export async function runOrderBatch(
  steps: readonly HandlerStep[],
  run: () => Promise<TransitionOrdersResult<HandlerStep>>,
): Promise<void> {
  const only = steps.length === 1 ? steps[0] : undefined;
  const work = async () => {
    const { skipped } = await run();
    for (const { step, reason } of skipped)
      step.context.logger.debug({ reason }, 'order moved on; nothing to do');
  };
  if (only) await skipIfMovedOn(only.context, work);
  else await work();
}
