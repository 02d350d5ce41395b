-- An order's state rebuilt by folding its events (event sourcing in SQL).
--
-- Starts from the order's OrderPlaced and applies each later event of stream order/<id> in version order,
-- one row per step: the state after that event. The last row is the order's current state, derived from
-- the log alone; compare it with shop.orders (order_state_check does that for every order).
-- The fold is the same as in order_state_check.sql: change both together.
--
-- Parameters:
--   :'order_id'  the order id (uuid)
--
-- Example:
--   psql "$DATABASE_URL" -v order_id=6f1c2a7e-... -f sql/order_state.sql
--   postbox sql order_state --var order_id=6f1c2a7e-...

with recursive stream as (
  select e.stream_version, e.type, e.payload
  from outbox.events e
  where e.stream_type = 'order'
    and e.stream_id = :'order_id'
),
fold as (
  select
    e.stream_version as version,
    e.type as event,
    'PLACED'::text as status,
    e.payload ->> 'customerId' as customer_id,
    (e.payload ->> 'totalCents')::bigint as total_cents,
    null::text as status_reason,
    null::text as payment,
    null::text as tracking_number
  from stream e
  where e.stream_version = 1
    and e.type = 'OrderPlaced'
  union all
  select
    e.stream_version,
    e.type,
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
  join stream e on e.stream_version = f.version + 1
)
select version, event, status, customer_id, total_cents, status_reason, payment, tracking_number
from fold
order by version;
