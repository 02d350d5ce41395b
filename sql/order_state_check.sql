-- Check: every order's state rebuilt from its events equals its row in shop.orders.
--
-- Folds every order stream (as order_state.sql does for one order) and compares the result, field by
-- field, with shop.orders, shop.payments and shop.shipments. One row per field: how many orders agree and
-- one that does not. Every mismatched count should be 0: the business rows and the log are written in
-- one transaction, so they can only disagree through a bug or a hand edit.
-- The fold is the same as in order_state.sql: change both together.
--
-- Parameters: none
--
-- Example:
--   psql "$DATABASE_URL" -f sql/order_state_check.sql
--   postbox sql order_state_check

with recursive fold as (
  select
    e.stream_id,
    e.stream_version as version,
    'PLACED'::text as status,
    e.payload ->> 'customerId' as customer_id,
    (e.payload ->> 'totalCents')::bigint as total_cents,
    null::text as status_reason,
    null::text as payment,
    null::text as tracking_number
  from outbox.events e
  where e.stream_type = 'order'
    and e.stream_version = 1
    and e.type = 'OrderPlaced'
  union all
  select
    f.stream_id,
    e.stream_version,
    case e.type
      when 'PaymentSucceeded' then 'PAID'
      when 'PaymentFailed' then 'PAYMENT_FAILED'
      when 'InventoryReserved' then 'RESERVED'
      when 'OrderRejected' then 'REJECTED'
      when 'OrderShipped' then 'SHIPPED'
      when 'OrderCancelled' then 'CANCELLED'
      else f.status -- PaymentRefunded follows a rejection or cancellation and keeps its status
    end,
    f.customer_id,
    f.total_cents,
    case e.type
      when 'PaymentFailed' then e.payload ->> 'reason'
      when 'OrderRejected' then
        'out of stock: ' || (
          select string_agg(format('%s (%s of %s)', missing.item ->> 'sku', missing.item ->> 'available',
                                   missing.item ->> 'requested'), ', ' order by missing.n)
          from jsonb_array_elements(e.payload -> 'missing') with ordinality as missing (item, n))
      when 'OrderCancelled' then e.payload ->> 'reason'
      else f.status_reason
    end,
    case e.type
      when 'PaymentSucceeded' then 'approved'
      when 'PaymentFailed' then 'declined'
      when 'PaymentRefunded' then 'refunded'
      else f.payment
    end,
    case e.type when 'OrderShipped' then e.payload ->> 'trackingNumber' else f.tracking_number end
  from fold f
  join outbox.events e
    on e.stream_type = 'order'
    and e.stream_id = f.stream_id
    and e.stream_version = f.version + 1
),
rebuilt as (
  select distinct on (stream_id) *
  from fold
  order by stream_id, version desc
),
stored as (
  select
    o.id::text as order_id, o.status, o.version, o.customer_id, o.total_cents, o.status_reason,
    p.status as payment, s.tracking_number
  from shop.orders o
  left join shop.payments p on p.order_id = o.id
  left join shop.shipments s on s.order_id = o.id
),
pairs as (
  select
    coalesce(r.stream_id, s.order_id) as order_id,
    r.stream_id is not null and s.order_id is not null as in_both,
    r.status as r_status, s.status as s_status,
    r.version as r_version, s.version as s_version,
    r.customer_id as r_customer_id, s.customer_id as s_customer_id,
    r.total_cents as r_total_cents, s.total_cents as s_total_cents,
    r.status_reason as r_status_reason, s.status_reason as s_status_reason,
    r.payment as r_payment, s.payment as s_payment,
    r.tracking_number as r_tracking_number, s.tracking_number as s_tracking_number
  from rebuilt r
  full join stored s on s.order_id = r.stream_id
),
checks as (
  select p.order_id, c.n, c.same
  from pairs p
  cross join lateral (values
    (1, p.in_both),
    (2, p.r_status is not distinct from p.s_status),
    (3, p.r_version is not distinct from p.s_version),
    (4, p.r_customer_id is not distinct from p.s_customer_id),
    (5, p.r_total_cents is not distinct from p.s_total_cents),
    (6, p.r_status_reason is not distinct from p.s_status_reason),
    (7, p.r_payment is not distinct from p.s_payment),
    (8, p.r_tracking_number is not distinct from p.s_tracking_number)
  ) as c (n, same)
)
select
  f.field,
  count(c.n) as orders,
  count(*) filter (where c.same) as matching,
  count(*) filter (where not c.same) as mismatched,
  min(c.order_id) filter (where not c.same) as example_order_id
from (values
  (1, 'order row and stream both exist'),
  (2, 'status'),
  (3, 'version'),
  (4, 'customer_id'),
  (5, 'total_cents'),
  (6, 'status_reason'),
  (7, 'payment status'),
  (8, 'tracking number')
) as f (n, field)
left join checks c on c.n = f.n
group by f.n, f.field
order by f.n;
