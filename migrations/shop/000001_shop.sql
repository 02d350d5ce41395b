-- The shop: a small order flow built on the outbox. Money is integer cents everywhere.
-- Every business row here is written in the same transaction as the event that announces it, so the log and
-- these tables never disagree (see src/shop).

create schema if not exists shop;
comment on schema shop is 'The demo shop: products, orders and what the order handlers did (payments, shipments, notifications).';

create table shop.products (
  sku text primary key check (sku ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
  name text not null check (length(name) between 1 and 200),
  price_cents integer not null check (price_cents >= 0),
  -- The inventory handler and cancellations change stock; the check is the last line of defence against
  -- overselling (the handler checks first and rejects the order instead).
  stock integer not null check (stock >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table shop.products is 'Catalogue. Its events (ProductAdded, ProductRestocked, StockDepleted) go to stream product/<sku>.';

create table shop.orders (
  id uuid primary key,
  -- Insertion order, for keyset pagination (newest first) without relying on clock resolution.
  seq bigint generated always as identity unique,
  customer_id text not null check (length(customer_id) between 1 and 100),
  status text not null check (status in ('PLACED', 'PAID', 'RESERVED', 'SHIPPED', 'PAYMENT_FAILED', 'REJECTED', 'CANCELLED')),
  total_cents bigint not null check (total_cents >= 0),
  -- Always equal to the version of stream order/<id>: writers read it under a row lock and append with it as
  -- expectedVersion, so a writer working from a stale read meets a ConcurrencyError instead of a lost update.
  version integer not null check (version > 0),
  idempotency_key text not null unique check (length(idempotency_key) between 1 and 200),
  status_reason text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index orders_status_seq_idx on shop.orders (status, seq);
create index orders_customer_idx on shop.orders (customer_id, seq);
comment on table shop.orders is
  'One row per order: PLACED -> PAID -> RESERVED -> SHIPPED, or final PAYMENT_FAILED / REJECTED / CANCELLED.';

create table shop.order_lines (
  order_id uuid not null references shop.orders (id) on delete cascade,
  line_no integer not null check (line_no > 0),
  sku text not null references shop.products (sku),
  product_name text not null,
  quantity integer not null check (quantity > 0),
  -- Price at the time of the order (the catalogue price may change later).
  unit_price_cents integer not null check (unit_price_cents >= 0),
  primary key (order_id, line_no),
  unique (order_id, sku)
);

-- At most one payment per order, whatever happens to deliveries: the primary key is the order id.
create table shop.payments (
  order_id uuid primary key references shop.orders (id) on delete cascade,
  amount_cents bigint not null check (amount_cents >= 0),
  status text not null check (status in ('approved', 'declined', 'refunded')),
  -- What we would send a real provider as its idempotency key: stable across redeliveries of the event.
  provider_reference text not null unique,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table shop.shipments (
  order_id uuid primary key references shop.orders (id) on delete cascade,
  carrier text not null,
  tracking_number text not null unique,
  shipped_at timestamptz not null default now()
);

-- One row per customer-facing order event (event_id unique: a redelivery adds nothing).
create table shop.notifications (
  id bigint generated always as identity primary key,
  event_id uuid not null unique,
  order_id uuid not null,
  customer_id text not null,
  kind text not null,
  message text not null,
  created_at timestamptz not null default now()
);
create index notifications_customer_idx on shop.notifications (customer_id, id);
create index notifications_order_idx on shop.notifications (order_id);
