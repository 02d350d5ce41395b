import type { Db } from '../db/database.ts';
import { type EventRow, readStreams } from '../engine/index.ts';
import type { Notification, OrderLine, Payment, Shipment } from '../shop/order.repository.ts';
import { ORDER_STREAM } from '../shop/shop.events.ts';

// Batched reads behind the Order fields (one query per field per page of orders, whatever its size), used by
// the dataloader plugin (schema/order.ts). Read-only queries of the API; the shop's repository keeps the
// single-order reads its services use.

/** The lines of some orders (flat; grouped by `order_id` by the caller), in line order. */
export function loadOrderLines(db: Db, orderIds: readonly string[]): Promise<OrderLine[]> {
  return db
    .selectFrom('shop.order_lines')
    .selectAll()
    .where('order_id', 'in', [...orderIds])
    .orderBy('order_id')
    .orderBy('line_no')
    .execute();
}

/** The payment of each order, in the order of `orderIds` (null where there is none). */
export async function loadPayments(db: Db, orderIds: readonly string[]): Promise<Array<Payment | null>> {
  const rows = await db
    .selectFrom('shop.payments')
    .selectAll()
    .where('order_id', 'in', [...orderIds])
    .execute();
  const byOrder = new Map(rows.map((row) => [row.order_id, row]));
  return orderIds.map((id) => byOrder.get(id) ?? null);
}

/** The shipment of each order, in the order of `orderIds` (null where there is none). */
export async function loadShipments(db: Db, orderIds: readonly string[]): Promise<Array<Shipment | null>> {
  const rows = await db
    .selectFrom('shop.shipments')
    .selectAll()
    .where('order_id', 'in', [...orderIds])
    .execute();
  const byOrder = new Map(rows.map((row) => [row.order_id, row]));
  return orderIds.map((id) => byOrder.get(id) ?? null);
}

/** The notifications of some orders (flat), oldest first. */
export function loadNotifications(db: Db, orderIds: readonly string[]): Promise<Notification[]> {
  return db
    .selectFrom('shop.notifications')
    .selectAll()
    .where('order_id', 'in', [...orderIds])
    .orderBy('id')
    .execute();
}

/** The events of some orders' streams (flat), each stream in version order. */
export function loadOrderEvents(db: Db, orderIds: readonly string[]): Promise<EventRow[]> {
  return readStreams(db, ORDER_STREAM, orderIds);
}
