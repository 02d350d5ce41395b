-- The busiest streams over a time range.
--
-- Which orders and products had the most events in the range, with their first and last event and the
-- type of the latest one. Ties are broken by stream type and id.
--
-- Parameters:
--   :'from'   start of the range, inclusive (a timestamp, or today, yesterday, -infinity...)
--   :'to'     end of the range, exclusive (a timestamp, or now, tomorrow, infinity...)
--   :'limit'  how many streams to list
--
-- Example:
--   psql "$DATABASE_URL" -v from=-infinity -v to=infinity -v limit=10 -f sql/busiest_streams.sql
--   postbox sql busiest_streams --var from=today --var to=tomorrow --var limit=10

select
  e.stream_type,
  e.stream_id,
  count(*) as events,
  min(e.occurred_at) as first_at,
  max(e.occurred_at) as last_at,
  (array_agg(e.type order by e.stream_version desc))[1] as latest_type
from outbox.events e
where e.occurred_at >= :'from'::timestamptz
  and e.occurred_at < :'to'::timestamptz
group by e.stream_type, e.stream_id
order by events desc, e.stream_type, e.stream_id
limit :'limit'::integer;
