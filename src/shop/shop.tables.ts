import type { ColumnType, Generated } from 'kysely';

/** bigint columns arrive from pg as strings; written as string or number. */
type Int8 = ColumnType<string, string | number, string | number>;
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

/** Order lifecycle: PLACED → PAID → RESERVED → SHIPPED, or one of the other final states. */
export type OrderStatus =
  | 'PLACED'
  | 'PAID'
  | 'RESERVED'
  | 'SHIPPED'
  | 'PAYMENT_FAILED'
  | 'REJECTED'
  | 'CANCELLED';

/** Every order status, in lifecycle order. */
export const ORDER_STATUSES: readonly OrderStatus[] = [
  'PLACED',
  'PAID',
  'RESERVED',
  'SHIPPED',
  'PAYMENT_FAILED',
  'REJECTED',
  'CANCELLED',
];

/** Statuses an order never leaves. */
export const FINAL_STATUSES: ReadonlySet<OrderStatus> = new Set<OrderStatus>([
  'SHIPPED',
  'PAYMENT_FAILED',
  'REJECTED',
  'CANCELLED',
]);

/** `shop.products`. */
export interface ProductsTable {
  sku: string;
  name: string;
  price_cents: number;
  stock: number;
  created_at: Generated<Date>;
  updated_at: Timestamp;
}

/** `shop.orders`. */
export interface OrdersTable {
  id: string;
  seq: ColumnType<string, never, never>;
  customer_id: string;
  status: OrderStatus;
  total_cents: Int8;
  version: number;
  idempotency_key: string;
  /** The caller the idempotency key belongs to (the order's actor); keys are unique per caller. */
  idempotency_scope: Generated<string>;
  status_reason: string | null;
  created_at: Generated<Date>;
  updated_at: Timestamp;
}

/** `shop.order_lines`. */
export interface OrderLinesTable {
  order_id: string;
  line_no: number;
  sku: string;
  product_name: string;
  quantity: number;
  unit_price_cents: number;
}

/** `shop.payments`: at most one per order. */
export interface PaymentsTable {
  order_id: string;
  amount_cents: Int8;
  status: 'approved' | 'declined' | 'refunded';
  provider_reference: string;
  created_at: Generated<Date>;
  updated_at: Timestamp;
}

/** `shop.shipments`. */
export interface ShipmentsTable {
  order_id: string;
  carrier: string;
  tracking_number: string;
  shipped_at: Generated<Date>;
}

/** `shop.notifications`: one per customer-facing order event. */
export interface NotificationsTable {
  id: Generated<Int8>;
  event_id: string;
  order_id: string;
  customer_id: string;
  kind: string;
  message: string;
  created_at: Generated<Date>;
}

/** The shop schema's tables, keyed as Kysely expects. */
export interface ShopTables {
  'shop.products': ProductsTable;
  'shop.orders': OrdersTable;
  'shop.order_lines': OrderLinesTable;
  'shop.payments': PaymentsTable;
  'shop.shipments': ShipmentsTable;
  'shop.notifications': NotificationsTable;
}

/** The shop's database as its code sees it (its own tables; the log is reached through the engine's API). */
export type ShopDatabase = ShopTables;
