import type { ConsumerDefinition } from '../engine/index.ts';
import { inventoryConsumer } from './handlers/inventory.handler.ts';
import { notificationConsumer } from './handlers/notification.handler.ts';
import { paymentConsumer } from './handlers/payment.handler.ts';
import { shippingConsumer } from './handlers/shipping.handler.ts';

/** Options of {@link shopConsumers}. */
export interface ShopOptions {
  /** Payment limit in cents (config `PAYMENT_LIMIT_CENTS`, default 1,000,000). */
  readonly paymentLimitCents: number;
}

/** The shop's order flow: payment → inventory → shipping, and notifications for the customer. */
export function shopConsumers(options: ShopOptions): ConsumerDefinition[] {
  return [
    paymentConsumer({ limitCents: options.paymentLimitCents }),
    inventoryConsumer(),
    shippingConsumer(),
    notificationConsumer(),
  ];
}
