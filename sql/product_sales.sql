-- Revenue and units per product, from events alone.
--
-- For orders shipped in the range (by their OrderShipped event), the units and revenue per product from
-- the lines the OrderPlaced event carried (quantity and unit price at the time of the order). Every
-- product in the catalogue (ProductAdded) is listed, with zeros when it sold nothing.
--
-- Parameters:
--   :'from'  shipped from, inclusive (a timestamp, or today, yesterday, -infinity...)
--   :'to'    shipped before, exclusive (a timestamp, or now, tomorrow, infinity...)
--
-- Example:
--   psql "$DATABASE_URL" -v from=-infinity -v to=infinity -f sql/product_sales.sql
--   postbox sql product_sales --var from=2026-11-01 --var to=2026-12-01

with shipped as (
  select e.stream_id
  from outbox.events e
  where e.stream_type = 'order'
    and e.type = 'OrderShipped'
    and e.occurred_at >= :'from'::timestamptz
    and e.occurred_at < :'to'::timestamptz
),
sold as (
  select
    line ->> 'sku' as sku,
    placed.stream_id as order_id,
    (line ->> 'quantity')::bigint as quantity,
    (line ->> 'quantity')::bigint * (line ->> 'unitPriceCents')::bigint as revenue_cents
  from shipped s
  join outbox.events placed
    on placed.stream_type = 'order'
    and placed.stream_id = s.stream_id
    and placed.type = 'OrderPlaced'
  cross join lateral jsonb_array_elements(placed.payload -> 'lines') as line
),
catalogue as (
  select e.stream_id as sku, e.payload ->> 'name' as name
  from outbox.events e
  where e.stream_type = 'product'
    and e.type = 'ProductAdded'
)
select
  c.sku,
  c.name,
  count(distinct s.order_id) as orders,
  coalesce(sum(s.quantity), 0) as units,
  coalesce(sum(s.revenue_cents), 0) as revenue_cents,
  to_char(coalesce(sum(s.revenue_cents), 0) / 100.0, 'FM999,999,999,990.00') as revenue
from catalogue c
left join sold s on s.sku = c.sku
group by c.sku, c.name
order by revenue_cents desc, c.sku;
