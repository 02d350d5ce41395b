import { type Kysely, type Selectable, sql } from 'kysely';
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

/** Orders by id, without locking them; ids that are not orders are absent. */
export async function findOrders(
  db: Kysely<ShopDatabase>,
  ids: readonly string[],
): Promise<Map<string, Order>> {
  const valid = [...new Set(ids)].filter(isOrderId);
  if (valid.length === 0) return new Map();
  const rows = await db.selectFrom('shop.orders').selectAll().where('id', 'in', valid).execute();
  return new Map(rows.map((row) => [row.id, row]));
}

/**
 * An order by id, locked until the transaction ends. Every writer of an order takes this lock first and
 * decides from what it reads here, so writers of one order run one after the other.
 */
export async function lockOrder(trx: Kysely<ShopDatabase>, id: string): Promise<Order | undefined> {
  if (!isOrderId(id)) return undefined;
  return trx.selectFrom('shop.orders').selectAll().where('id', '=', id).forNoKeyUpdate().executeTakeFirst();
}

/**
 * Orders by id, locked until the transaction ends, taken in id order in one statement: the batch form of
 * {@link lockOrder}. Every writer that locks several orders takes them in this order (and products after
 * them, by SKU), so two such transactions never wait on each other in a cycle. Unknown ids are absent.
 */
export async function lockOrders(
  trx: Kysely<ShopDatabase>,
  ids: readonly string[],
): Promise<Map<string, Order>> {
  const valid = [...new Set(ids)].filter(isOrderId);
  if (valid.length === 0) return new Map();
  const rows = await trx
    .selectFrom('shop.orders')
    .selectAll()
    .where('id', 'in', valid)
    .orderBy('id')
    .forNoKeyUpdate()
    .execute();
  return new Map(rows.map((row) => [row.id, row]));
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

/** A new status and version of one order, for {@link updateOrderStates}. */
export interface OrderState {
  readonly id: string;
  readonly status: OrderStatus;
  readonly version: number;
  /** Stored as `status_reason`; undefined leaves it as it is. */
  readonly reason?: string | null | undefined;
}

/** {@link updateOrderState} for several orders in one statement (the caller holds their locks). */
export async function updateOrderStates(
  trx: Kysely<ShopDatabase>,
  states: readonly OrderState[],
): Promise<void> {
  if (states.length === 0) return;
  const rows = states.map((state) => ({
    id: state.id,
    status: state.status,
    version: state.version,
    set_reason: state.reason !== undefined,
    reason: state.reason ?? null,
  }));
  await sql`
    update shop.orders as o
       set status = v.status, version = v.version, updated_at = ${new Date()},
           status_reason = case when v.set_reason then v.reason else o.status_reason end
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
           as v(id uuid, status text, version int, set_reason boolean, reason text)
     where o.id = v.id`.execute(trx);
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

/** Records payment attempts (approved or declined); the primary key keeps it to one per order. */
export async function insertPayments(
  trx: Kysely<ShopDatabase>,
  payments: readonly Pick<Payment, 'order_id' | 'amount_cents' | 'status' | 'provider_reference'>[],
): Promise<void> {
  if (payments.length === 0) return;
  const updatedAt = new Date();
  await trx
    .insertInto('shop.payments')
    .values(payments.map((payment) => ({ ...payment, updated_at: updatedAt })))
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

/** Records shipments (one per order). */
export async function insertShipments(
  trx: Kysely<ShopDatabase>,
  shipments: readonly Pick<Shipment, 'order_id' | 'carrier' | 'tracking_number'>[],
): Promise<void> {
  if (shipments.length > 0)
    await trx
      .insertInto('shop.shipments')
      .values([...shipments])
      .execute();
}

/** Records notifications; a second one for the same event is ignored (redelivery). */
export async function insertNotifications(
  trx: Kysely<ShopDatabase>,
  notifications: readonly Pick<Notification, 'event_id' | 'order_id' | 'customer_id' | 'kind' | 'message'>[],
): Promise<void> {
  if (notifications.length === 0) return;
  await trx
    .insertInto('shop.notifications')
    .values([...notifications])
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
