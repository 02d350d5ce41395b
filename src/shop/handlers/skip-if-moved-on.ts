import type { HandlerContext } from '../../engine/index.ts';
import { IllegalStateError } from '../../engine/index.ts';

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
