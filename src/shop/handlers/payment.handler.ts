import type { Transaction } from 'kysely';
import { type ConsumerDefinition, defineConsumer } from '../../engine/index.ts';
import { formatCents } from '../money.ts';
import { insertPayments } from '../order.repository.ts';
import { transitionOrders } from '../order.service.ts';
import { OrderPlaced, PaymentFailed, PaymentSucceeded } from '../shop.events.ts';
import type { ShopDatabase } from '../shop.tables.ts';
import { handlerSteps, runOrderBatch } from './skip-if-moved-on.ts';

/** Options of {@link paymentConsumer}. */
export interface PaymentOptions {
  /** Orders above this total (cents) are declined by the simulated provider (`PAYMENT_LIMIT_CENTS`). */
  readonly limitCents: number;
}

/**
 * `payment`: on `OrderPlaced`, charges the order with a simulated provider — `PaymentSucceeded` (PAID) or,
 * above the limit, `PaymentFailed` (PAYMENT_FAILED, final). One `shop.payments` row per order either way.
 *
 * The provider reference is the delivery's idempotency key (stable across redeliveries), what a real
 * provider would get so that a retry after a crash cannot charge twice. An order that is no longer PLACED
 * (cancelled first, or already charged) is left alone.
 *
 * A batch handler: the orders of a delivery batch are locked together (in id order) and their payments
 * written in one statement (see `transitionOrders`).
 */
export function paymentConsumer(options: PaymentOptions): ConsumerDefinition {
  return defineConsumer({
    name: 'payment',
    on: [OrderPlaced],
    async handleBatch(items, trx: Transaction<ShopDatabase>) {
      const steps = handlerSteps(items);
      await runOrderBatch(steps, async () => {
        const result = await transitionOrders(trx, steps, {
          action: 'charge',
          from: ['PLACED'],
          async decide(order, { context }) {
            const orderId = order.id;
            const amountCents = Number(order.total_cents);
            if (amountCents <= options.limitCents) {
              return {
                to: 'PAID',
                events: [
                  PaymentSucceeded.create(orderId, {
                    orderId,
                    amountCents,
                    paymentReference: context.idempotencyKey,
                  }),
                ],
              };
            }
            const reason = `declined: ${formatCents(amountCents)} is above the limit of ${formatCents(options.limitCents)}`;
            return {
              to: 'PAYMENT_FAILED',
              reason,
              events: [
                PaymentFailed.create(orderId, {
                  orderId,
                  amountCents,
                  reason,
                  limitCents: options.limitCents,
                }),
              ],
            };
          },
        });
        await insertPayments(
          trx,
          result.decided.map(({ order, step, transition }) => ({
            order_id: order.id,
            amount_cents: order.total_cents,
            status: transition.to === 'PAID' ? 'approved' : 'declined',
            provider_reference: step.context.idempotencyKey,
          })),
        );
        return result;
      });
    },
  });
}
