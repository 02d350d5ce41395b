-- Integrity checks: invariants of the log and of the shop rows it describes.
--
-- One row per invariant with the number of violations (0 everywhere on a healthy database) and one example:
-- stream versions contiguous (1..n, and n = outbox.streams.version); log order agreeing with version order
-- in every stream; no event without its business row (order, product, payment, shipment); no order without
-- its OrderPlaced; every payment and shipment announced by its event; order versions equal to their stream
-- versions; product stock equal to what its events add up to.
--
-- Parameters: none
--
-- Example:
--   psql "$DATABASE_URL" -f sql/integrity_checks.sql
--   postbox sql integrity_checks

with stream_versions as (
  select e.stream_type, e.stream_id, count(*) as events, min(e.stream_version) as first_version,
         max(e.stream_version) as last_version
  from outbox.events e
  group by e.stream_type, e.stream_id
),
log_order as (
  select e.stream_type, e.stream_id, e.stream_version,
         (e.log_xid, e.position) < (lag(e.log_xid) over stream, lag(e.position) over stream) as out_of_order
  from outbox.events e
  window stream as (partition by e.stream_type, e.stream_id order by e.stream_version)
),
stock_moves as (
  select e.stream_id as sku, (e.payload ->> 'stock')::bigint as quantity
  from outbox.events e
  where e.stream_type = 'product' and e.type = 'ProductAdded'
  union all
  select e.stream_id, (e.payload ->> 'quantity')::bigint
  from outbox.events e
  where e.stream_type = 'product' and e.type = 'ProductRestocked'
  union all
  select line ->> 'sku', -(line ->> 'quantity')::bigint
  from outbox.events e
  cross join lateral jsonb_array_elements(e.payload -> 'lines') as line
  where e.stream_type = 'order' and e.type = 'InventoryReserved'
  union all
  -- A cancellation after the reservation puts the reserved lines back.
  select line ->> 'sku', (line ->> 'quantity')::bigint
  from outbox.events cancelled
  join outbox.events reserved
    on reserved.stream_type = 'order'
    and reserved.stream_id = cancelled.stream_id
    and reserved.type = 'InventoryReserved'
  cross join lateral jsonb_array_elements(reserved.payload -> 'lines') as line
  where cancelled.stream_type = 'order'
    and cancelled.type = 'OrderCancelled'
    and (cancelled.payload ->> 'stockReleased')::boolean
),
stock_from_events as (
  select sku, sum(quantity) as stock
  from stock_moves
  group by sku
),
checks (n, invariant, violations, example) as (
  select 1, 'stream versions are 1..n without gaps',
         count(*), min(v.stream_type || '/' || v.stream_id)
  from stream_versions v
  left join outbox.streams s on s.stream_type = v.stream_type and s.stream_id = v.stream_id
  where v.first_version <> 1 or v.last_version <> v.events or s.version is distinct from v.last_version
  union all
  select 2, 'log order agrees with version order in every stream',
         count(*), min(l.stream_type || '/' || l.stream_id || ' v' || l.stream_version)
  from log_order l
  where l.out_of_order
  union all
  select 3, 'every order event has its order row',
         count(distinct e.stream_id), min(e.stream_id)
  from outbox.events e
  where e.stream_type = 'order'
    and not exists (select from shop.orders o where o.id::text = e.stream_id)
  union all
  select 4, 'every product event has its product row',
         count(distinct e.stream_id), min(e.stream_id)
  from outbox.events e
  where e.stream_type = 'product'
    and not exists (select from shop.products p where p.sku = e.stream_id)
  union all
  select 5, 'every payment event has its payment row',
         count(*), min(e.stream_id)
  from outbox.events e
  where e.stream_type = 'order'
    and e.type in ('PaymentSucceeded', 'PaymentFailed', 'PaymentRefunded')
    and not exists (
      select from shop.payments p
      where p.order_id::text = e.stream_id
        and p.amount_cents = (e.payload ->> 'amountCents')::bigint
        and (e.type <> 'PaymentFailed' or p.status = 'declined'))
  union all
  select 6, 'every OrderShipped has its shipment row',
         count(*), min(e.stream_id)
  from outbox.events e
  where e.stream_type = 'order'
    and e.type = 'OrderShipped'
    and not exists (
      select from shop.shipments s
      where s.order_id::text = e.stream_id and s.tracking_number = e.payload ->> 'trackingNumber')
  union all
  select 7, 'every order has its OrderPlaced (version 1)',
         count(*), min(o.id::text)
  from shop.orders o
  where not exists (
    select from outbox.events e
    where e.stream_type = 'order' and e.stream_id = o.id::text and e.stream_version = 1
      and e.type = 'OrderPlaced')
  union all
  select 8, 'every payment row has its payment event',
         count(*), min(p.order_id::text)
  from shop.payments p
  where not exists (
    select from outbox.events e
    where e.stream_type = 'order' and e.stream_id = p.order_id::text
      and e.type = case p.status
        when 'approved' then 'PaymentSucceeded'
        when 'declined' then 'PaymentFailed'
        else 'PaymentRefunded'
      end)
  union all
  select 9, 'every shipment row has its OrderShipped',
         count(*), min(s.order_id::text)
  from shop.shipments s
  where not exists (
    select from outbox.events e
    where e.stream_type = 'order' and e.stream_id = s.order_id::text and e.type = 'OrderShipped')
  union all
  select 10, 'order versions equal their stream versions',
         count(*), min(o.id::text)
  from shop.orders o
  left join outbox.streams s on s.stream_type = 'order' and s.stream_id = o.id::text
  where s.version is distinct from o.version
  union all
  select 11, 'product stock equals what its events add up to',
         count(*), min(p.sku)
  from shop.products p
  left join stock_from_events f on f.sku = p.sku
  where f.stock is distinct from p.stock
)
select invariant, violations, example
from checks
order by n;
