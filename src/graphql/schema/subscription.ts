import { LOG_START, NotFoundError, ValidationError } from '../../engine/index.ts';
import { findOrder, isOrderId, type Order } from '../../shop/order.repository.ts';
import { ORDER_STREAM } from '../../shop/shop.events.ts';
import { FINAL_STATUSES } from '../../shop/shop.tables.ts';
import { builder } from '../builder.ts';
import type { GraphQLContext } from '../context.ts';
import { EventFilterInput, EventRef, parseAfter, toEventFilter } from './event.ts';
import { OrderRef } from './order.ts';
import { SCOPES_TO_READ_EVENTS, SCOPES_TO_READ_ORDERS } from './scopes.ts';

builder.subscriptionType({
  description:
    'Fed only from committed events in the log (one log reader per API process), so every API process ' +
    'sees the same events in the same order.',
});

builder.subscriptionFields((t) => ({
  events: t.field({
    type: EventRef,
    authScopes: SCOPES_TO_READ_EVENTS,
    description:
      "Matching events in the log's gap-safe read order. With `after` (a cursor) or `fromBeginning`: every " +
      'committed event after that point first, then live ones — no gap, no duplicate. With neither: only ' +
      'events from now on.',
    args: {
      filter: t.arg({ type: EventFilterInput, required: false }),
      after: t.arg.string({ required: false, description: 'Cursor of the last event you have.' }),
      fromBeginning: t.arg.boolean({ required: false }),
    },
    subscribe: (_root, args, context) => {
      const after = parseAfter(args.after);
      if (after && args.fromBeginning) {
        throw new ValidationError('Pass either after or fromBeginning, not both', 'fromBeginning');
      }
      const start = after ?? (args.fromBeginning ? LOG_START : 'now');
      return context.tailer.feed(toEventFilter(args.filter), start);
    },
    resolve: (event) => event,
  }),
  orderUpdated: t.field({
    type: OrderRef,
    authScopes: SCOPES_TO_READ_ORDERS,
    description:
      'The order as it is now, then again after each of its events; completes once the order is final.',
    args: { id: t.arg.id({ required: true }) },
    subscribe: (_root, args, context) => watchOrder(context, String(args.id)),
    resolve: (order) => order,
  }),
}));

/**
 * The order's current state, then its state after each new event of its stream, until it is final. The feed
 * is registered before the first read, so no change between that read and the live events can be missed;
 * events the first read already reflects (version ≤ the row's) are skipped.
 */
export function watchOrder(context: GraphQLContext, orderId: string): AsyncIterableIterator<Order> {
  if (!isOrderId(orderId)) throw new NotFoundError(`No order with id ${orderId}`);
  const feed = context.tailer.feed({ streamType: ORDER_STREAM, streamId: orderId }, 'now');
  async function* states(): AsyncGenerator<Order> {
    try {
      await feed.ready();
      let order = await findOrder(context.db, orderId);
      if (!order) throw new NotFoundError(`No order with id ${orderId}`);
      yield order;
      if (FINAL_STATUSES.has(order.status)) return;
      for await (const event of feed) {
        if (event.streamVersion <= order.version) continue;
        order = (await findOrder(context.db, orderId)) ?? order;
        yield order;
        if (FINAL_STATUSES.has(order.status)) return;
      }
    } finally {
      await feed.return();
    }
  }
  const generator = states();
  return {
    next: () => generator.next(),
    // Close the feed first: a generator waiting on it can only finish once its pending read resolves.
    return: async (value?: unknown) => {
      await feed.return();
      return generator.return(value as Order);
    },
    throw: (error?: unknown) => generator.throw(error),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
