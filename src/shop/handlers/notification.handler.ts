import type { Transaction } from 'kysely';
import { type ConsumerDefinition, defineConsumer } from '../../engine/index.ts';
import { formatCents } from '../money.ts';
import { findOrders, insertNotifications } from '../order.repository.ts';
import { ORDER_EVENTS, type OrderEvent } from '../shop.events.ts';
import type { ShopDatabase } from '../shop.tables.ts';

/**
 * `notifications`: on every order event, one `shop.notifications` row per customer-facing one (all but
 * `InventoryReserved`, which is internal). Keyed by event id, so a redelivery adds nothing. A batch handler:
 * one read of the batch's orders, one insert of its notifications (it locks nothing).
 */
export function notificationConsumer(): ConsumerDefinition {
  return defineConsumer({
    name: 'notifications',
    on: [...ORDER_EVENTS],
    async handleBatch(items, trx: Transaction<ShopDatabase>) {
      const messages = items.flatMap(({ event }) => {
        const message = customerMessage(event);
        return message === undefined ? [] : [{ event, message }];
      });
      if (messages.length === 0) return;
      const orders = await findOrders(
        trx,
        messages.map(({ event }) => event.streamId),
      );
      await insertNotifications(
        trx,
        messages.map(({ event, message }) => {
          const order = orders.get(event.streamId);
          if (!order) throw new Error(`Order ${event.streamId} of event ${event.id} does not exist`);
          return {
            event_id: event.id,
            order_id: order.id,
            customer_id: order.customer_id,
            kind: event.type,
            message,
          };
        }),
      );
    },
  });
}

/** What the customer is told about an event; undefined for internal events. */
export function customerMessage(event: OrderEvent): string | undefined {
  const ref = `#${event.streamId.slice(0, 8)}`;
  switch (event.type) {
    case 'OrderPlaced': {
      const items = event.payload.lines.reduce((total, line) => total + line.quantity, 0);
      return `We received your order ${ref}: ${items} item${items === 1 ? '' : 's'}, ${formatCents(event.payload.totalCents)}.`;
    }
    case 'PaymentSucceeded':
      return `Payment of ${formatCents(event.payload.amountCents)} for order ${ref} went through.`;
    case 'PaymentFailed':
      return `Your payment for order ${ref} was declined; the order is closed.`;
    case 'OrderRejected':
      return `Sorry: order ${ref} could not be fulfilled (${event.payload.missing.map((line) => line.sku).join(', ')} out of stock).`;
    case 'PaymentRefunded':
      return `${formatCents(event.payload.amountCents)} for order ${ref} has been refunded.`;
    case 'OrderShipped':
      return `Order ${ref} is on its way with ${event.payload.carrier}, tracking ${event.payload.trackingNumber}.`;
    case 'OrderCancelled':
      return `Order ${ref} was cancelled: ${event.payload.reason}.`;
    case 'InventoryReserved':
      return undefined;
  }
}
