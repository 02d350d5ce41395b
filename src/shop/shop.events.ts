import { z } from 'zod';
import { defineEvent, type EventDefinition, type RecordedEventOf } from '../engine/index.ts';

/** Stream type of every order event; the stream id is the order id. */
export const ORDER_STREAM = 'order';
/** Stream type of product events; the stream id is the SKU. */
export const PRODUCT_STREAM = 'product';

const orderId = z.uuid();
const sku = z.string().min(1).max(64);
const cents = z.number().int().min(0);

/** A line as carried by {@link OrderPlaced}: enough for any consumer to act without reading the tables. */
const placedLine = z.object({
  sku,
  name: z.string(),
  quantity: z.number().int().positive(),
  unitPriceCents: cents,
});

/** An order was accepted: event-carried state (customer, lines with prices, total). */
export const OrderPlaced = defineEvent({
  type: 'OrderPlaced',
  streamType: ORDER_STREAM,
  schema: z.object({
    orderId,
    customerId: z.string().min(1),
    lines: z.array(placedLine).min(1),
    totalCents: cents,
  }),
});

/** The payment provider took the money. */
export const PaymentSucceeded = defineEvent({
  type: 'PaymentSucceeded',
  streamType: ORDER_STREAM,
  schema: z.object({ orderId, amountCents: cents, paymentReference: z.string() }),
});

/** The payment provider declined (simulated: total above PAYMENT_LIMIT_CENTS). Final. */
export const PaymentFailed = defineEvent({
  type: 'PaymentFailed',
  streamType: ORDER_STREAM,
  schema: z.object({ orderId, amountCents: cents, reason: z.string(), limitCents: cents }),
});

/** Stock for every line was taken from the catalogue. */
export const InventoryReserved = defineEvent({
  type: 'InventoryReserved',
  streamType: ORDER_STREAM,
  schema: z.object({ orderId, lines: z.array(z.object({ sku, quantity: z.number().int().positive() })) }),
});

/** Some line could not be served after payment (out of stock). Final; followed by {@link PaymentRefunded}. */
export const OrderRejected = defineEvent({
  type: 'OrderRejected',
  streamType: ORDER_STREAM,
  schema: z.object({
    orderId,
    reason: z.literal('OUT_OF_STOCK'),
    missing: z.array(z.object({ sku, requested: z.number().int(), available: z.number().int().min(0) })),
  }),
});

/** Money given back (order rejected, or cancelled after payment). */
export const PaymentRefunded = defineEvent({
  type: 'PaymentRefunded',
  streamType: ORDER_STREAM,
  schema: z.object({
    orderId,
    amountCents: cents,
    paymentReference: z.string(),
    reason: z.enum(['OUT_OF_STOCK', 'CANCELLED']),
  }),
});

/** Handed to the carrier. Final. */
export const OrderShipped = defineEvent({
  type: 'OrderShipped',
  streamType: ORDER_STREAM,
  schema: z.object({ orderId, carrier: z.string(), trackingNumber: z.string() }),
});

/** Cancelled before shipping. Final. `stockReleased` when reserved stock went back to the catalogue. */
export const OrderCancelled = defineEvent({
  type: 'OrderCancelled',
  streamType: ORDER_STREAM,
  schema: z.object({
    orderId,
    reason: z.string().min(1).max(500),
    previousStatus: z.enum(['PLACED', 'PAID', 'RESERVED']),
    stockReleased: z.boolean(),
  }),
});

/** A product entered the catalogue. */
export const ProductAdded = defineEvent({
  type: 'ProductAdded',
  streamType: PRODUCT_STREAM,
  schema: z.object({ sku, name: z.string(), priceCents: cents, stock: z.number().int().min(0) }),
});

/** Stock was added to a product; `stock` is the level after it. */
export const ProductRestocked = defineEvent({
  type: 'ProductRestocked',
  streamType: PRODUCT_STREAM,
  schema: z.object({ sku, quantity: z.number().int().positive(), stock: z.number().int().min(0) }),
});

/** A reservation took a product's stock to zero. */
export const StockDepleted = defineEvent({
  type: 'StockDepleted',
  streamType: PRODUCT_STREAM,
  schema: z.object({ sku, orderId }),
});

/** Every order event, in the order they may occur. */
export const ORDER_EVENTS = [
  OrderPlaced,
  PaymentSucceeded,
  PaymentFailed,
  InventoryReserved,
  OrderRejected,
  PaymentRefunded,
  OrderShipped,
  OrderCancelled,
] as const;

/** Every product event. */
export const PRODUCT_EVENTS = [ProductAdded, ProductRestocked, StockDepleted] as const;

/** Every event type the shop defines (for upcasting on read). */
export const SHOP_EVENTS: readonly EventDefinition[] = [...ORDER_EVENTS, ...PRODUCT_EVENTS];

/** An order event as recorded in the log. */
export type OrderEvent = RecordedEventOf<(typeof ORDER_EVENTS)[number]>;
