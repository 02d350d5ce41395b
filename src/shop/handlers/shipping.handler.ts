import type { Transaction } from 'kysely';
import { type ConsumerDefinition, defineConsumer } from '../../engine/index.ts';
import { insertShipments } from '../order.repository.ts';
import { transitionOrders } from '../order.service.ts';
import { InventoryReserved, OrderShipped } from '../shop.events.ts';
import type { ShopDatabase } from '../shop.tables.ts';
import { handlerSteps, runOrderBatch } from './skip-if-moved-on.ts';

/** The simulated carrier. */
export const CARRIER = 'Postbox Parcel';

/**
 * `shipping`: on `InventoryReserved`, hands the order to the carrier — `OrderShipped` (SHIPPED, final).
 * A batch handler: the batch's orders are locked together (in id order), their shipments written in one
 * statement.
 */
export function shippingConsumer(): ConsumerDefinition {
  return defineConsumer({
    name: 'shipping',
    on: [InventoryReserved],
    async handleBatch(items, trx: Transaction<ShopDatabase>) {
      const steps = handlerSteps(items);
      await runOrderBatch(steps, async () => {
        const result = await transitionOrders(trx, steps, {
          action: 'ship',
          from: ['RESERVED'],
          async decide(order) {
            const orderId = order.id;
            return {
              to: 'SHIPPED',
              events: [
                OrderShipped.create(orderId, {
                  orderId,
                  carrier: CARRIER,
                  trackingNumber: trackingNumber(orderId),
                }),
              ],
            };
          },
        });
        await insertShipments(
          trx,
          result.decided.map(({ order }) => ({
            order_id: order.id,
            carrier: CARRIER,
            tracking_number: trackingNumber(order.id),
          })),
        );
        return result;
      });
    },
  });
}

/** Derived from the order id: one order, one tracking number, however often shipping runs. */
function trackingNumber(orderId: string): string {
  return `PB${orderId.replaceAll('-', '').toUpperCase()}`;
}
