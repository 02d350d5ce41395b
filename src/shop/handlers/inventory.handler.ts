import type { Transaction } from 'kysely';
import { type ConsumerDefinition, defineConsumer } from '../../engine/index.ts';
import { findOrderLines, type OrderLine } from '../order.repository.ts';
import { transitionOrders } from '../order.service.ts';
import { adjustStocks, lockProducts } from '../product.repository.ts';
import { InventoryReserved, OrderRejected, PaymentSucceeded, StockDepleted } from '../shop.events.ts';
import type { ShopDatabase } from '../shop.tables.ts';
import { handlerSteps, runOrderBatch } from './skip-if-moved-on.ts';

/**
 * `inventory`: on `PaymentSucceeded`, takes every line's quantity from stock — `InventoryReserved`
 * (RESERVED), plus `StockDepleted` on each product that reaches zero — or, when any line cannot be served,
 * `OrderRejected` + `PaymentRefunded` (REJECTED, final) and no stock moves.
 *
 * A batch handler: the batch's orders are locked first (in id order), then every product any of them
 * needs (in SKU order), each in one statement; orders are then served one after the other in delivery
 * order against the stock as the earlier orders of the batch left it, and the stock changes are written in
 * one statement. Every writer of orders and products locks in that global order (orders by id, then
 * products by SKU; `cancelOrder` locks one order, then its products), so batches of different partitions
 * never wait on each other in a cycle.
 */
export function inventoryConsumer(): ConsumerDefinition {
  return defineConsumer({
    name: 'inventory',
    on: [PaymentSucceeded],
    async handleBatch(items, trx: Transaction<ShopDatabase>) {
      const steps = handlerSteps(items);
      let lines = new Map<string, OrderLine[]>();
      /** Stock of each locked product, as the batch's earlier decisions leave it. */
      const stock = new Map<string, number>();
      const deltas = new Map<string, number>();
      await runOrderBatch(steps, () =>
        transitionOrders(trx, steps, {
          action: 'reserve stock for',
          from: ['PAID'],
          async prepare(orders) {
            const paid = [...orders.values()]
              .filter((order) => order.status === 'PAID')
              .map((order) => order.id);
            lines = await findOrderLines(trx, paid);
            const products = await lockProducts(
              trx,
              [...lines.values()].flat().map((line) => line.sku),
            );
            for (const [sku, product] of products) stock.set(sku, product.stock);
          },
          async decide(order) {
            const orderId = order.id;
            const orderLines = lines.get(orderId) ?? [];
            const missing = orderLines
              .map((line) => ({
                sku: line.sku,
                requested: line.quantity,
                available: stock.get(line.sku) ?? 0,
              }))
              .filter((line) => line.available < line.requested);
            if (missing.length > 0) {
              return {
                to: 'REJECTED',
                reason: `out of stock: ${missing.map((line) => `${line.sku} (${line.available} of ${line.requested})`).join(', ')}`,
                events: [OrderRejected.create(orderId, { orderId, reason: 'OUT_OF_STOCK', missing })],
                refund: 'OUT_OF_STOCK',
              };
            }
            for (const line of orderLines) {
              stock.set(line.sku, (stock.get(line.sku) ?? 0) - line.quantity);
              deltas.set(line.sku, (deltas.get(line.sku) ?? 0) - line.quantity);
            }
            const depleted = orderLines.filter((line) => stock.get(line.sku) === 0);
            return {
              to: 'RESERVED',
              events: [
                InventoryReserved.create(orderId, {
                  orderId,
                  lines: orderLines.map((line) => ({ sku: line.sku, quantity: line.quantity })),
                }),
              ],
              otherEvents: depleted.map((line) => StockDepleted.create(line.sku, { sku: line.sku, orderId })),
            };
          },
        }).then(async (result) => {
          await adjustStocks(trx, deltas);
          return result;
        }),
      );
    },
  });
}
