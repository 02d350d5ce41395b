import type { Transaction } from 'kysely';
import { type ConsumerDefinition, defineConsumer } from '../../engine/index.ts';
import { formatCents } from '../money.ts';
import { insertPayment } from '../order.repository.ts';
import { transitionOrder } from '../order.service.ts';
import { OrderPlaced, PaymentFailed, PaymentSucceeded } from '../shop.events.ts';
import type { ShopDatabase } from '../shop.tables.ts';
import { skipIfMovedOn } from './skip-if-moved-on.ts';

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
 */
export function paymentConsumer(options: PaymentOptions): ConsumerDefinition {
  return defineConsumer({
    name: 'payment',
    on: [OrderPlaced],
    async handle(event, trx: Transaction<ShopDatabase>, context) {
      const orderId = event.payload.orderId;
      await skipIfMovedOn(context, () =>
        transitionOrder(trx, orderId, {
          action: 'charge',
          from: ['PLACED'],
          metadata: context.causedBy,
          async decide(order) {
            const amountCents = Number(order.total_cents);
            const approved = amountCents <= options.limitCents;
            const record = () =>
              insertPayment(trx, {
                order_id: orderId,
                amount_cents: String(amountCents),
                status: approved ? 'approved' : 'declined',
                provider_reference: context.idempotencyKey,
              });
            if (approved) {
              return {
                to: 'PAID',
                events: [
                  PaymentSucceeded.create(orderId, {
                    orderId,
                    amountCents,
                    paymentReference: context.idempotencyKey,
                  }),
                ],
                apply: record,
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
              apply: record,
            };
          },
        }),
      );
    },
  });
}
