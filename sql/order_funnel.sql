-- The order funnel from events alone: placed -> paid -> reserved -> shipped, with failure and cancel rates.
--
-- For the orders placed in the range (by their OrderPlaced event), how many reached each step and how
-- many ended in payment failure, rejection (out of stock) or cancellation. Reads only outbox.events: an
-- order counts as paid if its stream has PaymentSucceeded, even when it was later cancelled and refunded.
-- pct_of_placed is the share of all placed orders; pct_of_previous the conversion from the step before.
--
-- Parameters:
--   :'from'  orders placed from, inclusive (a timestamp, or today, yesterday, -infinity...)
--   :'to'    orders placed before, exclusive (a timestamp, or now, tomorrow, infinity...)
--
-- Example:
--   psql "$DATABASE_URL" -v from=-infinity -v to=infinity -f sql/order_funnel.sql
--   postbox sql order_funnel --var from=2026-11-01 --var to=2026-12-01

with per_order as (
  select
    e.stream_id,
    min(e.occurred_at) filter (where e.type = 'OrderPlaced') as placed_at,
    bool_or(e.type = 'PaymentSucceeded') as paid,
    bool_or(e.type = 'InventoryReserved') as reserved,
    bool_or(e.type = 'OrderShipped') as shipped,
    bool_or(e.type = 'PaymentFailed') as payment_failed,
    bool_or(e.type = 'OrderRejected') as rejected,
    bool_or(e.type = 'OrderCancelled') as cancelled
  from outbox.events e
  where e.stream_type = 'order'
  group by e.stream_id
),
totals as (
  select
    count(*) as placed,
    count(*) filter (where paid) as paid,
    count(*) filter (where reserved) as reserved,
    count(*) filter (where shipped) as shipped,
    count(*) filter (where payment_failed) as payment_failed,
    count(*) filter (where rejected) as rejected,
    count(*) filter (where cancelled) as cancelled,
    count(*) filter (where not (shipped or payment_failed or rejected or cancelled)) as open
  from per_order
  where placed_at >= :'from'::timestamptz
    and placed_at < :'to'::timestamptz
)
select
  s.stage,
  s.orders,
  round(100.0 * s.orders / nullif(t.placed, 0), 1) as pct_of_placed,
  round(100.0 * s.orders / nullif(s.previous, 0), 1) as pct_of_previous
from totals t
cross join lateral (values
  (1, 'placed', t.placed, null::bigint),
  (2, 'paid', t.paid, t.placed),
  (3, 'reserved', t.reserved, t.paid),
  (4, 'shipped', t.shipped, t.reserved),
  (5, 'payment failed', t.payment_failed, null),
  (6, 'rejected (out of stock)', t.rejected, null),
  (7, 'cancelled', t.cancelled, null),
  (8, 'not final yet', t.open, null)
) as s (step, stage, orders, previous)
order by s.step;
