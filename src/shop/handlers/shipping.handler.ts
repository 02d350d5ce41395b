import type { Transaction } from 'kysely';
import { type ConsumerDefinition, defineConsumer } from '../../engine/index.ts';
import { insertShipment } from '../order.repository.ts';
import { transitionOrder } from '../order.service.ts';
import { InventoryReserved, OrderShipped } from '../shop.events.ts';
import type { ShopDatabase } from '../shop.tables.ts';
import { skipIfMovedOn } from './skip-if-moved-on.ts';

/** The simulated carrier. */
export const CARRIER = 'Postbox Parcel';

/** `shipping`: on `InventoryReserved`, hands the order to the carrier — `OrderShipped` (SHIPPED, final). */
export function shippingConsumer(): ConsumerDefinition {
  return defineConsumer({
    name: 'shipping',
    on: [InventoryReserved],
    async handle(event, trx: Transaction<ShopDatabase>, context) {
      const orderId = event.payload.orderId;
      // Derived from the order id: one order, one tracking number, however often this runs.
      const trackingNumber = `PB${orderId.replaceAll('-', '').toUpperCase()}`;
      await skipIfMovedOn(context, () =>
        transitionOrder(trx, orderId, {
          action: 'ship',
          from: ['RESERVED'],
          metadata: context.causedBy,
          async decide() {
            return {
              to: 'SHIPPED',
              events: [OrderShipped.create(orderId, { orderId, carrier: CARRIER, trackingNumber })],
              apply: () =>
                insertShipment(trx, { order_id: orderId, carrier: CARRIER, tracking_number: trackingNumber }),
            };
          },
        }),
      );
    },
  });
}
