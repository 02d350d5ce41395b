import type { Kysely, Selectable } from 'kysely';
import type {
  NotificationsTable,
  OrderLinesTable,
  OrderStatus,
  OrdersTable,
  PaymentsTable,
  ShipmentsTable,
  ShopDatabase,
} from './shop.tables.ts';

/** An order row. */
export type Order = Selectable<OrdersTable>;
/** An order line row. */
export type OrderLine = Selectable<OrderLinesTable>;
/** A payment row. */
export type Payment = Selectable<PaymentsTable>;
/** A shipment row. */
export type Shipment = Selectable<ShipmentsTable>;
/** A notification row. */
export type Notification = Selectable<NotificationsTable>;

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `id` can be an order id (anything else would make Postgres raise 22P02). */
export function isOrderId(id: string): boolean {
  return uuidPattern.test(id);
}

/** An order by id, without locking it. */
export async function findOrder(db: Kysely<ShopDatabase>, id: string): Promise<Order | undefined> {
  if (!isOrderId(id)) return undefined;
  return db.selectFrom('shop.orders').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * An order by id, locked until the transaction ends. Every writer of an order takes this lock first and
 * decides from what it reads here, so writers of one order run one after the other.
 */
export async function lockOrder(trx: Kysely<ShopDatabase>, id: string): Promise<Order | undefined> {
  if (!isOrderId(id)) return undefined;
  return trx.selectFrom('shop.orders').selectAll().where('id', '=', id).forNoKeyUpdate().executeTakeFirst();
}

/** The order a caller (`scope`) placed with an idempotency key, if any. */
export async function findOrderByIdempotencyKey(
  db: Kysely<ShopDatabase>,
  scope: string,
  key: string,
): Promise<Order | undefined> {
  return db
    .selectFrom('shop.orders')
    .selectAll()
    .where('idempotency_scope', '=', scope)
    .where('idempotency_key', '=', key)
    .executeTakeFirst();
}

/** Inserts an order unless its idempotency key exists (then returns undefined: the other order won). */
export async function insertOrder(
  trx: Kysely<ShopDatabase>,
  order: Pick<
    Order,
    'id' | 'customer_id' | 'status' | 'total_cents' | 'version' | 'idempotency_key' | 'idempotency_scope'
  >,
): Promise<Order | undefined> {
  return trx
    .insertInto('shop.orders')
    .values({ ...order, updated_at: new Date() })
    .onConflict((conflict) => conflict.columns(['idempotency_scope', 'idempotency_key']).doNothing())
    .returningAll()
    .executeTakeFirst();
}

/** Writes an order's new status and version (the version of its stream after the events just appended). */
export async function updateOrderState(
  trx: Kysely<ShopDatabase>,
  id: string,
  state: { status: OrderStatus; version: number; reason?: string | null },
): Promise<Order> {
  return trx
    .updateTable('shop.orders')
    .set({
      status: state.status,
      version: state.version,
      ...(state.reason !== undefined ? { status_reason: state.reason } : {}),
      updated_at: new Date(),
    })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Inserts an order's lines. */
export async function insertOrderLines(
  trx: Kysely<ShopDatabase>,
  lines: readonly OrderLine[],
): Promise<void> {
  if (lines.length > 0)
    await trx
      .insertInto('shop.order_lines')
      .values([...lines])
      .execute();
}

/** The lines of some orders, by order id, each in line order. */
export async function findOrderLines(
  db: Kysely<ShopDatabase>,
  orderIds: readonly string[],
): Promise<Map<string, OrderLine[]>> {
  const byOrder = new Map<string, OrderLine[]>(orderIds.map((id) => [id, []]));
  if (orderIds.length === 0) return byOrder;
  const rows = await db
    .selectFrom('shop.order_lines')
    .selectAll()
    .where('order_id', 'in', [...orderIds])
    .orderBy('order_id')
    .orderBy('line_no')
    .execute();
  for (const row of rows) byOrder.get(row.order_id)?.push(row);
  return byOrder;
}

/** Options of {@link listOrders}. */
export interface ListOrdersOptions {
  /** Only orders with this status. */
  readonly status?: OrderStatus | undefined;
  /** Only orders placed before the one with this `seq` (keyset, newest first). */
  readonly beforeSeq?: string | undefined;
  readonly limit: number;
}

/** Orders, newest first. */
export async function listOrders(db: Kysely<ShopDatabase>, options: ListOrdersOptions): Promise<Order[]> {
  let query = db.selectFrom('shop.orders').selectAll();
  if (options.status) query = query.where('status', '=', options.status);
  if (options.beforeSeq !== undefined) query = query.where('seq', '<', options.beforeSeq as never);
  return query.orderBy('seq', 'desc').limit(options.limit).execute();
}

/** An order's payment, if the payment handler got to it. */
export async function findPayment(db: Kysely<ShopDatabase>, orderId: string): Promise<Payment | undefined> {
  return db.selectFrom('shop.payments').selectAll().where('order_id', '=', orderId).executeTakeFirst();
}

/** Records a payment attempt (approved or declined); the primary key keeps it to one per order. */
export async function insertPayment(
  trx: Kysely<ShopDatabase>,
  payment: Pick<Payment, 'order_id' | 'amount_cents' | 'status' | 'provider_reference'>,
): Promise<void> {
  await trx
    .insertInto('shop.payments')
    .values({ ...payment, updated_at: new Date() })
    .execute();
}

/** Marks an order's payment refunded; returns it (undefined when there was none). */
export async function refundPayment(
  trx: Kysely<ShopDatabase>,
  orderId: string,
): Promise<Payment | undefined> {
  return trx
    .updateTable('shop.payments')
    .set({ status: 'refunded', updated_at: new Date() })
    .where('order_id', '=', orderId)
    .where('status', '=', 'approved')
    .returningAll()
    .executeTakeFirst();
}

/** An order's shipment, if shipped. */
export async function findShipment(db: Kysely<ShopDatabase>, orderId: string): Promise<Shipment | undefined> {
  return db.selectFrom('shop.shipments').selectAll().where('order_id', '=', orderId).executeTakeFirst();
}

/** Records a shipment (one per order). */
export async function insertShipment(
  trx: Kysely<ShopDatabase>,
  shipment: Pick<Shipment, 'order_id' | 'carrier' | 'tracking_number'>,
): Promise<void> {
  await trx.insertInto('shop.shipments').values(shipment).execute();
}

/** Records a notification; a second one for the same event is ignored (redelivery). */
export async function insertNotification(
  trx: Kysely<ShopDatabase>,
  notification: Pick<Notification, 'event_id' | 'order_id' | 'customer_id' | 'kind' | 'message'>,
): Promise<void> {
  await trx
    .insertInto('shop.notifications')
    .values(notification)
    .onConflict((conflict) => conflict.column('event_id').doNothing())
    .execute();
}

/** An order's notifications, oldest first. */
export async function findNotifications(db: Kysely<ShopDatabase>, orderId: string): Promise<Notification[]> {
  return db
    .selectFrom('shop.notifications')
    .selectAll()
    .where('order_id', '=', orderId)
    .orderBy('id')
    .execute();
}
