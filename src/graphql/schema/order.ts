import { toRecordedEvent, ValidationError } from '../../engine/index.ts';
import {
  findOrder,
  listOrders,
  type Notification,
  type Order,
  type OrderLine,
  type Payment,
  type Shipment,
} from '../../shop/order.repository.ts';
import { cancelOrder, placeOrder } from '../../shop/order.service.ts';
import { ORDER_STATUSES } from '../../shop/shop.tables.ts';
import { builder } from '../builder.ts';
import {
  loadNotifications,
  loadOrderEvents,
  loadOrderLines,
  loadPayments,
  loadShipments,
} from '../order-loaders.ts';
import { ERROR_TYPES } from './errors.ts';
import { EventRef, INT8_MAX, pageSize } from './event.ts';
import { SCOPES_TO_READ_ORDERS, SCOPES_TO_WRITE_ORDERS } from './scopes.ts';

export const OrderStatusEnum = builder.enumType('OrderStatus', {
  description:
    'PLACED → PAID → RESERVED → SHIPPED; or it ends PAYMENT_FAILED, REJECTED (out of stock, refunded) or CANCELLED.',
  values: ORDER_STATUSES,
});

const OrderLineRef = builder.objectRef<OrderLine>('OrderLine').implement({
  fields: (t) => ({
    lineNo: t.exposeInt('line_no'),
    sku: t.exposeString('sku'),
    productName: t.exposeString('product_name'),
    quantity: t.exposeInt('quantity'),
    unitPriceCents: t.exposeInt('unit_price_cents', { description: 'Price when the order was placed.' }),
  }),
});

const PaymentRef = builder.objectRef<Payment>('Payment').implement({
  fields: (t) => ({
    amountCents: t.int({ resolve: (payment) => Number(payment.amount_cents) }),
    status: t.exposeString('status', { description: '`approved`, `declined` or `refunded`.' }),
    reference: t.exposeString('provider_reference'),
    createdAt: t.field({ type: 'DateTime', resolve: (payment) => payment.created_at }),
  }),
});

const ShipmentRef = builder.objectRef<Shipment>('Shipment').implement({
  fields: (t) => ({
    carrier: t.exposeString('carrier'),
    trackingNumber: t.exposeString('tracking_number'),
    shippedAt: t.field({ type: 'DateTime', resolve: (shipment) => shipment.shipped_at }),
  }),
});

const NotificationRef = builder.objectRef<Notification>('Notification').implement({
  fields: (t) => ({
    kind: t.exposeString('kind', { description: 'The event type it tells about.' }),
    message: t.exposeString('message'),
    eventId: t.exposeID('event_id'),
    createdAt: t.field({ type: 'DateTime', resolve: (notification) => notification.created_at }),
  }),
});

/** An order. */
export const OrderRef = builder.objectRef<Order>('Order').implement({
  description: "An order. Its events are stream `order/<id>`; `version` is that stream's version.",
  fields: (t) => ({
    id: t.exposeID('id'),
    customerId: t.exposeString('customer_id'),
    status: t.field({ type: OrderStatusEnum, resolve: (order) => order.status }),
    statusReason: t.exposeString('status_reason', {
      nullable: true,
      description: 'Why it failed or was cancelled.',
    }),
    totalCents: t.int({ resolve: (order) => Number(order.total_cents) }),
    version: t.exposeInt('version', {
      description: 'Pass as `expectedVersion` to act only if nothing changed since.',
    }),
    idempotencyKey: t.exposeString('idempotency_key'),
    final: t.boolean({
      description: 'True once the order can no longer change.',
      resolve: (order) => ['SHIPPED', 'PAYMENT_FAILED', 'REJECTED', 'CANCELLED'].includes(order.status),
    }),
    createdAt: t.field({ type: 'DateTime', resolve: (order) => order.created_at }),
    updatedAt: t.field({ type: 'DateTime', resolve: (order) => order.updated_at }),
    lines: t.loadableGroup({
      type: OrderLineRef,
      load: (ids: string[], context) => loadOrderLines(context.db, ids),
      group: (line) => line.order_id,
      resolve: (order) => order.id,
    }),
    payment: t.loadable({
      type: PaymentRef,
      nullable: true,
      load: (ids: string[], context) => loadPayments(context.db, ids),
      resolve: (order) => order.id,
    }),
    shipment: t.loadable({
      type: ShipmentRef,
      nullable: true,
      load: (ids: string[], context) => loadShipments(context.db, ids),
      resolve: (order) => order.id,
    }),
    notifications: t.loadableGroup({
      type: NotificationRef,
      description: 'What the customer was told, oldest first.',
      load: (ids: string[], context) => loadNotifications(context.db, ids),
      group: (notification) => notification.order_id,
      resolve: (order) => order.id,
    }),
    events: t.loadableGroup({
      type: EventRef,
      description: "The order's stream, in version order.",
      load: async (ids: string[], context) =>
        (await loadOrderEvents(context.db, ids)).map((row) => toRecordedEvent(row, context.registry)),
      group: (event) => event.streamId,
      resolve: (order) => order.id,
    }),
  }),
});

const OrderConnection = builder.connectionObject(
  { type: OrderRef, name: 'OrderConnection', description: 'Orders, newest first.' },
  { name: 'OrderEdge' },
);

const ORDER_CURSOR_PREFIX = 'order:v1:';

function encodeOrderCursor(order: Order): string {
  return Buffer.from(`${ORDER_CURSOR_PREFIX}${order.seq}`).toString('base64url');
}

function decodeOrderCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const seq = text.startsWith(ORDER_CURSOR_PREFIX) ? text.slice(ORDER_CURSOR_PREFIX.length) : '';
  if (!/^\d{1,19}$/.test(seq) || BigInt(seq) > INT8_MAX)
    throw new ValidationError('after is not a valid cursor', 'after');
  return seq;
}

const OrderLineInput = builder.inputType('OrderLineInput', {
  fields: (t) => ({
    sku: t.string({ required: true }),
    quantity: t.int({ required: true, description: '1 to 10000.' }),
  }),
});

const PlaceOrderInput = builder.inputType('PlaceOrderInput', {
  fields: (t) => ({
    customerId: t.string({ required: true }),
    lines: t.field({ type: [OrderLineInput], required: true, description: '1 to 100 lines, one per SKU.' }),
    idempotencyKey: t.string({
      required: true,
      description: 'Your id for this order: sending it again returns the same order, never a second one.',
    }),
  }),
});

builder.queryFields((t) => ({
  order: t.field({
    type: OrderRef,
    nullable: true,
    authScopes: SCOPES_TO_READ_ORDERS,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => (await findOrder(context.db, String(args.id))) ?? null,
  }),
  orders: t.field({
    type: OrderConnection,
    authScopes: SCOPES_TO_READ_ORDERS,
    description: 'Orders, newest first.',
    args: {
      first: t.arg.int({ required: false, description: 'Page size, 0–500. Default 50.' }),
      after: t.arg.string({ required: false }),
      status: t.arg({ type: OrderStatusEnum, required: false }),
    },
    resolve: async (_root, args, context) => {
      const first = pageSize(args.first);
      const beforeSeq = args.after ? decodeOrderCursor(args.after) : undefined;
      const rows =
        first === 0
          ? []
          : await listOrders(context.db, { status: args.status ?? undefined, beforeSeq, limit: first + 1 });
      const edges = rows.slice(0, first).map((node) => ({ cursor: encodeOrderCursor(node), node }));
      return {
        edges,
        pageInfo: {
          hasNextPage: rows.length > first,
          hasPreviousPage: beforeSeq !== undefined,
          startCursor: edges[0]?.cursor ?? null,
          endCursor: edges.at(-1)?.cursor ?? null,
        },
      };
    },
  }),
}));

builder.mutationFields((t) => ({
  placeOrder: t.field({
    type: OrderRef,
    authScopes: SCOPES_TO_WRITE_ORDERS,
    description:
      'Places an order (PLACED, event `OrderPlaced`); payment, stock and shipping follow asynchronously — ' +
      'watch them with `orderUpdated`. The same `idempotencyKey` returns the same order.',
    args: { input: t.arg({ type: PlaceOrderInput, required: true }) },
    errors: {
      types: [ERROR_TYPES.ValidationError],
      union: { name: 'PlaceOrderResult' },
      result: { name: 'PlaceOrderSuccess' },
      dataField: { name: 'order' },
    },
    resolve: async (_root, args, context) =>
      (await placeOrder(context.db, args.input, context.eventMetadata)).order,
  }),
  cancelOrder: t.field({
    type: OrderRef,
    authScopes: SCOPES_TO_WRITE_ORDERS,
    description:
      'Cancels an order that has not shipped (event `OrderCancelled`; a paid order is refunded and reserved ' +
      'stock released). With `expectedVersion`, only if the order is still at that version.',
    args: {
      orderId: t.arg.id({ required: true }),
      reason: t.arg.string({ required: true }),
      expectedVersion: t.arg.int({ required: false }),
    },
    errors: {
      types: [
        ERROR_TYPES.ValidationError,
        ERROR_TYPES.NotFoundError,
        ERROR_TYPES.IllegalStateError,
        ERROR_TYPES.ConcurrencyError,
      ],
      union: { name: 'CancelOrderResult' },
      result: { name: 'CancelOrderSuccess' },
      dataField: { name: 'order' },
    },
    resolve: (_root, args, context) =>
      cancelOrder(
        context.db,
        {
          orderId: String(args.orderId),
          reason: args.reason,
          ...(args.expectedVersion !== null && args.expectedVersion !== undefined
            ? { expectedVersion: args.expectedVersion }
            : {}),
        },
        context.eventMetadata,
      ),
  }),
}));
