-- Time to ship: percentiles of how long orders took from placed to shipped, step by step.
--
-- For the orders placed in the range that shipped, percentiles (continuous, interpolated) of the time from
-- OrderPlaced to PaymentSucceeded, to InventoryReserved, to OrderShipped, and overall. Times are the
-- events' occurred_at (the start of the transaction that appended each one).
--
-- Parameters:
--   :'from'  orders placed from, inclusive (a timestamp, or today, yesterday, -infinity...)
--   :'to'    orders placed before, exclusive (a timestamp, or now, tomorrow, infinity...)
--
-- Example:
--   psql "$DATABASE_URL" -v from=-infinity -v to=infinity -f sql/time_to_ship.sql
--   postbox sql time_to_ship --var from=yesterday --var to=now

with per_order as (
  select
    e.stream_id,
    min(e.occurred_at) filter (where e.type = 'OrderPlaced') as placed_at,
    min(e.occurred_at) filter (where e.type = 'PaymentSucceeded') as paid_at,
    min(e.occurred_at) filter (where e.type = 'InventoryReserved') as reserved_at,
    min(e.occurred_at) filter (where e.type = 'OrderShipped') as shipped_at
  from outbox.events e
  where e.stream_type = 'order'
  group by e.stream_id
),
shipped as (
  select *
  from per_order
  where shipped_at is not null
    and placed_at >= :'from'::timestamptz
    and placed_at < :'to'::timestamptz
),
percentiles as (
  select
    count(*) as orders,
    percentile_cont(array[0.5, 0.9, 0.95, 0.99, 1]) within group (order by paid_at - placed_at) as to_pay,
    percentile_cont(array[0.5, 0.9, 0.95, 0.99, 1]) within group (order by reserved_at - paid_at) as to_reserve,
    percentile_cont(array[0.5, 0.9, 0.95, 0.99, 1]) within group (order by shipped_at - reserved_at) as to_ship,
    percentile_cont(array[0.5, 0.9, 0.95, 0.99, 1]) within group (order by shipped_at - placed_at) as total
  from shipped
)
select
  u.percentile,
  p.orders as shipped_orders,
  u.placed_to_paid,
  u.paid_to_reserved,
  u.reserved_to_shipped,
  u.placed_to_shipped
from percentiles p
cross join lateral unnest(array['p50', 'p90', 'p95', 'p99', 'max'], p.to_pay, p.to_reserve, p.to_ship, p.total)
  with ordinality as u (percentile, placed_to_paid, paid_to_reserved, reserved_to_shipped, placed_to_shipped, n)
where p.orders > 0
order by u.n;
