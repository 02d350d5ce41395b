-- One order's timeline: each event with the status it led to, in plain words.
--
-- Reads the shop.order_timeline view: per event of the order, the time since it was placed, the status
-- after it, a one-line description (amounts, reasons, tracking number) and who appended it.
--
-- Parameters:
--   :'order_id'  the order id (uuid)
--
-- Example:
--   psql "$DATABASE_URL" -v order_id=6f1c2a7e-... -f sql/order_timeline.sql
--   postbox sql order_timeline --var order_id=6f1c2a7e-...

select version, type, since_placed, status_after, detail, actor
from shop.order_timeline
where order_id = :'order_id'
order by version;
