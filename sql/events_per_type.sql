-- Events per type per hour (or day, week...) over a time range.
--
-- How many events of each type were appended in each time bucket: the shape of activity over time.
-- Buckets follow the session's TimeZone (set timezone = 'UTC' for UTC days). Buckets without events are
-- left out.
--
-- Parameters:
--   :'bucket'  bucket size: minute, hour, day, week or month
--   :'from'    start of the range, inclusive (a timestamp, or today, yesterday, -infinity...)
--   :'to'      end of the range, exclusive (a timestamp, or now, tomorrow, infinity...)
--
-- Example:
--   psql "$DATABASE_URL" -v bucket=hour -v from=yesterday -v to=tomorrow -f sql/events_per_type.sql
--   postbox sql events_per_type --var bucket=day --var from=2026-11-01 --var to=2026-12-01

select
  date_trunc(:'bucket', e.occurred_at) as bucket_start,
  e.type,
  count(*) as events
from outbox.events e
where e.occurred_at >= :'from'::timestamptz
  and e.occurred_at < :'to'::timestamptz
group by 1, 2
order by 1, 2;
