import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { EventMetadata, NewEvent } from '../engine/index.ts';
import {
  appendEvents,
  ConcurrencyError,
  IllegalStateError,
  NotFoundError,
  ValidationError,
} from '../engine/index.ts';
import {
  findOrderByIdempotencyKey,
  findOrderLines,
  findPayment,
  insertOrder,
  insertOrderLines,
  isOrderId,
  lockOrder,
  lockOrders,
  type Order,
  type OrderLine,
  type OrderState,
  refundPayment,
  updateOrderState,
  updateOrderStates,
} from './order.repository.ts';
import { adjustStock, findProducts, lockProducts } from './product.repository.ts';
import { ORDER_STREAM, OrderCancelled, OrderPlaced, PaymentRefunded } from './shop.events.ts';
import type { OrderStatus, ShopDatabase } from './shop.tables.ts';
import { inTransaction, parseInput } from './transaction.ts';

/** Largest order total accepted, in cents (GraphQL `Int` is 32-bit). */
export const MAX_ORDER_TOTAL_CENTS = 2_147_483_647;

const placeOrderSchema = z.object({
  customerId: z
    .string()
    .trim()
    .min(1, 'customerId must not be empty')
    .max(100, 'customerId must be at most 100 characters'),
  idempotencyKey: z
    .string()
    .min(1, 'idempotencyKey must not be empty')
    .max(200, 'idempotencyKey must be at most 200 characters'),
  lines: z
    .array(
      z.object({
        sku: z.string().min(1, 'sku must not be empty').max(64, 'sku must be at most 64 characters'),
        quantity: z
          .number()
          .int('quantity must be a whole number')
          .min(1, 'quantity must be at least 1')
          .max(10_000, 'quantity must be at most 10000'),
      }),
    )
    .min(1, 'an order needs at least one line')
    .max(100, 'an order has at most 100 lines'),
});

/** Input of {@link placeOrder}. */
export type PlaceOrderInput = z.input<typeof placeOrderSchema>;

/** What {@link placeOrder} did. */
export interface PlacedOrder {
  readonly order: Order;
  /** False when the idempotency key had been used: this is the order placed then, nothing was written now. */
  readonly created: boolean;
}

/**
 * Places an order: the order row, its lines (prices as of now) and `OrderPlaced` (stream `order/<id>`,
 * version 1) commit together. Stock is not checked here: the inventory handler finds out after payment.
 *
 * Idempotent by `idempotencyKey`, per caller (`metadata.actor`): a repeat by the same caller — even
 * concurrent — returns the first order and writes nothing;
 * reusing a key for a different order is a {@link ValidationError}.
 *
 * @throws ValidationError bad input, unknown SKU, duplicate SKU, total too large, key reused differently.
 */
export async function placeOrder(
  db: Kysely<ShopDatabase>,
  input: PlaceOrderInput,
  metadata: EventMetadata = {},
): Promise<PlacedOrder> {
  const valid = parseInput(placeOrderSchema, input);
  const seen = new Map<string, number>();
  valid.lines.forEach((line, index) => {
    if (seen.has(line.sku)) {
      throw new ValidationError(
        `lines.${index}.sku: SKU ${line.sku} appears twice (line ${seen.get(line.sku)}); put the quantity on one line`,
        `lines.${index}.sku`,
      );
    }
    seen.set(line.sku, index);
  });

  // Keys are the caller's own: another caller's key never returns (or blocks) this caller's order.
  const scope = metadata.actor ?? '';
  const earlier = await findOrderByIdempotencyKey(db, scope, valid.idempotencyKey);
  if (earlier) return replay(db, earlier, valid);

  return inTransaction(db, async (trx) => {
    const products = await findProducts(
      trx,
      valid.lines.map((line) => line.sku),
    );
    const orderId = randomUUID();
    const lines: OrderLine[] = valid.lines.map((line, index) => {
      const product = products.get(line.sku);
      if (!product) {
        throw new ValidationError(
          `lines.${index}.sku: no product with SKU ${line.sku}`,
          `lines.${index}.sku`,
        );
      }
      return {
        order_id: orderId,
        line_no: index + 1,
        sku: product.sku,
        product_name: product.name,
        quantity: line.quantity,
        unit_price_cents: product.price_cents,
      };
    });
    const totalCents = lines.reduce((total, line) => total + line.quantity * line.unit_price_cents, 0);
    if (totalCents > MAX_ORDER_TOTAL_CENTS) {
      throw new ValidationError(
        `lines: the order total (${totalCents} cents) is above the maximum of ${MAX_ORDER_TOTAL_CENTS}`,
        'lines',
      );
    }
    const order = await insertOrder(trx, {
      id: orderId,
      customer_id: valid.customerId,
      status: 'PLACED',
      total_cents: String(totalCents),
      version: 1,
      idempotency_key: valid.idempotencyKey,
      idempotency_scope: scope,
    });
    if (!order) {
      // A concurrent request with the same key committed first (our insert waited for it): that one is the order.
      const winner = await findOrderByIdempotencyKey(trx, scope, valid.idempotencyKey);
      if (!winner) throw new Error(`Order with idempotency key ${valid.idempotencyKey} vanished`);
      return replay(trx, winner, valid);
    }
    await insertOrderLines(trx, lines);
    await appendEvents(
      trx,
      [
        OrderPlaced.create(orderId, {
          orderId,
          customerId: valid.customerId,
          lines: lines.map((line) => ({
            sku: line.sku,
            name: line.product_name,
            quantity: line.quantity,
            unitPriceCents: line.unit_price_cents,
          })),
          totalCents,
        }),
      ],
      { expectedVersion: 0, metadata },
    );
    return { order, created: true };
  });
}

/** The earlier order of an idempotency key, after checking the repeat asks for the same thing. */
async function replay(
  db: Kysely<ShopDatabase>,
  order: Order,
  input: z.output<typeof placeOrderSchema>,
): Promise<PlacedOrder> {
  const lines = (await findOrderLines(db, [order.id])).get(order.id) ?? [];
  const same =
    order.customer_id === input.customerId &&
    lines.length === input.lines.length &&
    lines.every((line, index) => {
      const asked = input.lines[index];
      return asked !== undefined && asked.sku === line.sku && asked.quantity === line.quantity;
    });
  if (!same) {
    throw new ValidationError(
      `idempotencyKey: this key was already used for a different order (${order.id})`,
      'idempotencyKey',
    );
  }
  return { order, created: false };
}

const cancelOrderSchema = z.object({
  orderId: z.string(),
  reason: z
    .string()
    .trim()
    .min(1, 'reason must not be empty')
    .max(500, 'reason must be at most 500 characters'),
  expectedVersion: z.number().int().min(1, 'expectedVersion must be at least 1').optional(),
});

/** Input of {@link cancelOrder}. */
export type CancelOrderInput = z.input<typeof cancelOrderSchema>;

/**
 * Cancels an order that has not shipped: `OrderCancelled`, plus `PaymentRefunded` when it was paid; reserved
 * stock goes back to the catalogue. Races with the handlers are settled by the order row lock and the
 * stream's expected version: whoever comes second sees the first one's outcome.
 *
 * @throws NotFoundError no such order.
 * @throws IllegalStateError the order is shipped or already final.
 * @throws ConcurrencyError `expectedVersion` was given and the order has moved past it.
 */
export async function cancelOrder(
  db: Kysely<ShopDatabase>,
  input: CancelOrderInput,
  metadata: EventMetadata = {},
): Promise<Order> {
  const valid = parseInput(cancelOrderSchema, input);
  if (!isOrderId(valid.orderId)) throw new NotFoundError(`No order with id ${valid.orderId}`);
  return inTransaction(db, (trx) =>
    transitionOrder(trx, valid.orderId, {
      action: 'cancel',
      from: ['PLACED', 'PAID', 'RESERVED'],
      expectedVersion: valid.expectedVersion,
      metadata,
      decide: async (order) => {
        const previousStatus = order.status as 'PLACED' | 'PAID' | 'RESERVED';
        const stockReleased = previousStatus === 'RESERVED';
        const events: NewEvent[] = [
          OrderCancelled.create(order.id, {
            orderId: order.id,
            reason: valid.reason,
            previousStatus,
            stockReleased,
          }),
        ];
        const paid = previousStatus === 'PAID' || previousStatus === 'RESERVED';
        return {
          to: 'CANCELLED',
          reason: valid.reason,
          events,
          async apply() {
            if (stockReleased) {
              const lines = (await findOrderLines(trx, [order.id])).get(order.id) ?? [];
              await lockProducts(
                trx,
                lines.map((line) => line.sku),
              );
              for (const line of lines) await adjustStock(trx, line.sku, line.quantity);
            }
          },
          ...(paid ? { refund: 'CANCELLED' as const } : {}),
        };
      },
    }),
  );
}

/** What an order transition does, decided from the locked order row. */
export interface Transition {
  readonly to: OrderStatus;
  /** Stored as the order's `status_reason` (undefined: left as is). */
  readonly reason?: string | null;
  /** Events for the order's own stream, appended at the version the row was read at. */
  readonly events: readonly NewEvent[];
  /** Refund the order's approved payment (appends `PaymentRefunded` after `events`). */
  readonly refund?: 'OUT_OF_STOCK' | 'CANCELLED';
  /** Events of other streams (e.g. `StockDepleted`), appended without an expected version. */
  readonly otherEvents?: readonly NewEvent[];
  /** Business writes, run once the order's events are appended. */
  apply?(): Promise<void>;
}

/** Options of {@link transitionOrder}. */
export interface TransitionOptions {
  /** For error messages: "cannot <action> order …". */
  readonly action: string;
  /** Statuses the transition starts from; any other is an {@link IllegalStateError}. */
  readonly from: readonly OrderStatus[];
  /** The caller's idea of the order's version (optimistic concurrency from the outside, e.g. an API client). */
  readonly expectedVersion?: number | undefined;
  /** Metadata of the appended events (correlation and causation). */
  readonly metadata: EventMetadata;
  /** Decides the transition from the locked row. Must not write: writes go in {@link Transition.apply}. */
  decide(order: Order): Promise<Transition>;
}

/**
 * The one way an order changes state. In the caller's transaction: lock the order row, check its status,
 * decide, append the order's events with `expectedVersion` = the row's version, apply the business writes,
 * and store the new status with the stream's new version — so `shop.orders.version` always equals the
 * version of stream `order/<id>`.
 *
 * Concurrency: the row lock serialises every writer of one order (the cancel mutation and the handlers), and
 * each decides from what it reads under the lock, so the second one sees the first one's outcome. The
 * expected version is the safety net should anything append to the stream without going through here.
 *
 * @throws NotFoundError, IllegalStateError, ConcurrencyError (see {@link TransitionOptions}).
 */
export async function transitionOrder(
  trx: Kysely<ShopDatabase>,
  orderId: string,
  options: TransitionOptions,
): Promise<Order> {
  const order = await lockOrder(trx, orderId);
  if (!order) throw new NotFoundError(`No order with id ${orderId}`);
  if (options.expectedVersion !== undefined && order.version !== options.expectedVersion) {
    throw new ConcurrencyError(
      `Order ${orderId} is at version ${order.version}, not the expected ${options.expectedVersion}`,
      ORDER_STREAM,
      orderId,
      options.expectedVersion,
      order.version,
    );
  }
  if (!options.from.includes(order.status)) {
    throw new IllegalStateError(`Cannot ${options.action} order ${orderId}: it is ${order.status}`);
  }
  const transition = await options.decide(order);
  const { events, refund } = await appendOrderEvents(trx, order, transition, options);
  if (transition.otherEvents?.length)
    await appendEvents(trx, transition.otherEvents, { metadata: options.metadata });
  if (refund) await refundPayment(trx, orderId);
  await transition.apply?.();
  return updateOrderState(trx, orderId, {
    status: transition.to,
    version: order.version + events.length,
    ...(transition.reason !== undefined ? { reason: transition.reason } : {}),
  });
}

/**
 * Appends a decided transition's events to the order's stream at the version the row was locked at (plus
 * `PaymentRefunded` when it refunds an approved payment).
 */
async function appendOrderEvents(
  trx: Kysely<ShopDatabase>,
  order: Order,
  transition: Transition,
  options: Pick<TransitionOptions, 'action' | 'from' | 'metadata'>,
): Promise<{ events: NewEvent[]; refund: boolean }> {
  const orderId = order.id;
  const events = [...transition.events];
  // The payment row only changes under the order's lock (which we hold), so reading it here is stable.
  const payment = transition.refund ? await findPayment(trx, orderId) : undefined;
  const refund = payment?.status === 'approved';
  if (payment && refund && transition.refund) {
    events.push(
      PaymentRefunded.create(orderId, {
        orderId,
        amountCents: Number(payment.amount_cents),
        paymentReference: payment.provider_reference,
        reason: transition.refund,
      }),
    );
  }
  try {
    await appendEvents(trx, events, { expectedVersion: order.version, metadata: options.metadata });
  } catch (error) {
    if (!(error instanceof ConcurrencyError)) throw error;
    // The stream moved on although we hold the row lock: something appended without going through here.
    // Read the row again: if the order is no longer in a state this action applies to (e.g. it was
    // cancelled), report that — a handler then stops instead of retrying; otherwise let the caller retry.
    // (If the failed append left the transaction unusable this read throws, and the retry sees the new state.)
    const now = await lockOrder(trx, orderId);
    if (now && !options.from.includes(now.status)) {
      throw new IllegalStateError(`Cannot ${options.action} order ${orderId}: it is now ${now.status}`);
    }
    throw error;
  }
  return { events, refund };
}

/** One order's step in {@link transitionOrders}: which order, and the metadata of the events it appends. */
export interface OrderStep {
  readonly orderId: string;
  /** Metadata of the appended events (correlation and causation of the event this step handles). */
  readonly metadata: EventMetadata;
}

/** Options of {@link transitionOrders}. */
export interface TransitionOrdersOptions<S extends OrderStep> {
  /** For messages: "cannot <action> order …". */
  readonly action: string;
  /** Statuses the transition starts from; an order in any other is skipped (it moved on). */
  readonly from: readonly OrderStatus[];
  /**
   * Runs once every order is locked, before the first decision: locks and reads what the decisions need.
   * Rows locked here come after the orders in the global lock order (products by SKU).
   */
  prepare?(orders: ReadonlyMap<string, Order>): Promise<void>;
  /** Decides one step from its locked order, in step order. Must not write: writes go in `apply`. */
  decide(order: Order, step: S): Promise<Transition>;
}

/** A step {@link transitionOrders} carried out. */
export interface DecidedStep<S extends OrderStep> {
  readonly step: S;
  /** The order as locked, before this step. */
  readonly order: Order;
  readonly transition: Transition;
}

/** What {@link transitionOrders} did. */
export interface TransitionOrdersResult<S extends OrderStep> {
  readonly decided: DecidedStep<S>[];
  /** Steps whose order was no longer in a `from` status (cancelled meanwhile, or already acted on). */
  readonly skipped: Array<{ readonly step: S; readonly reason: string }>;
}

/**
 * {@link transitionOrder} for many orders in one transaction (a batch of handler events), with the same
 * rules: every order of the batch is locked first, in id order, in one statement; then `prepare` (locks of
 * other rows, in their own fixed order); then each step in the given order decides from its locked row and
 * appends its events at the row's version; events of other streams are appended together; and the new
 * statuses are written in one statement. Locking everything in one global order (orders by id, then what
 * `prepare` locks) is what lets two batches run concurrently without deadlocking.
 *
 * An order not in a `from` status is skipped, not an error; a step after another on the same order sees
 * the first one's outcome.
 *
 * @throws NotFoundError an order does not exist; ConcurrencyError / IllegalStateError from an append (see
 *   {@link transitionOrder}): the whole batch fails, and the handler's per-event fallback attributes it.
 */
export async function transitionOrders<S extends OrderStep>(
  trx: Kysely<ShopDatabase>,
  steps: readonly S[],
  options: TransitionOrdersOptions<S>,
): Promise<TransitionOrdersResult<S>> {
  const orders = await lockOrders(
    trx,
    steps.map((step) => step.orderId),
  );
  await options.prepare?.(orders);
  const decided: DecidedStep<S>[] = [];
  const skipped: Array<{ step: S; reason: string }> = [];
  const states = new Map<string, OrderState>();
  const refunds: string[] = [];
  const otherEvents: NewEvent[] = [];
  for (const step of steps) {
    const order = orders.get(step.orderId);
    if (!order) throw new NotFoundError(`No order with id ${step.orderId}`);
    if (!options.from.includes(order.status)) {
      skipped.push({ step, reason: `Cannot ${options.action} order ${order.id}: it is ${order.status}` });
      continue;
    }
    const transition = await options.decide(order, step);
    const { events, refund } = await appendOrderEvents(trx, order, transition, {
      ...options,
      metadata: step.metadata,
    });
    if (refund) refunds.push(order.id);
    for (const event of transition.otherEvents ?? []) {
      otherEvents.push({ ...event, metadata: { ...step.metadata, ...event.metadata } });
    }
    const version = order.version + events.length;
    states.set(order.id, {
      id: order.id,
      status: transition.to,
      version,
      ...(transition.reason !== undefined ? { reason: transition.reason } : {}),
    });
    decided.push({ step, order, transition });
    // A later step on the same order decides from this outcome.
    orders.set(order.id, { ...order, status: transition.to, version });
  }
  if (otherEvents.length > 0) await appendEvents(trx, otherEvents);
  for (const orderId of refunds) await refundPayment(trx, orderId);
  for (const { transition } of decided) await transition.apply?.();
  await updateOrderStates(trx, [...states.values()]);
  return { decided, skipped };
}
