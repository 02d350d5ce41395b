-- Throughput: events, transactions and streams per time bucket, with average and peak rates.
--
-- How busy the log was: per bucket, the events appended, in how many transactions, touching how many
-- streams; the average rate over the whole bucket and the busiest second in it.
--
-- Parameters:
--   :'bucket'  bucket size: second, minute, hour, day, week or month
--   :'from'    start of the range, inclusive (a timestamp, or today, yesterday, -infinity...)
--   :'to'      end of the range, exclusive (a timestamp, or now, tomorrow, infinity...)
--
-- Example:
--   psql "$DATABASE_URL" -v bucket=minute -v from=today -v to=tomorrow -f sql/throughput.sql
--   postbox sql throughput --var bucket=hour --var from=2026-11-01 --var to=2026-12-01

with in_range as (
  select
    date_trunc(:'bucket', e.occurred_at) as bucket_start,
    date_trunc('second', e.occurred_at) as second,
    e.transaction_id,
    e.stream_type,
    e.stream_id
  from outbox.events e
  where e.occurred_at >= :'from'::timestamptz
    and e.occurred_at < :'to'::timestamptz
),
per_second as (
  select bucket_start, second, count(*) as events
  from in_range
  group by bucket_start, second
)
select
  r.bucket_start,
  count(*) as events,
  count(distinct r.transaction_id) as transactions,
  count(distinct (r.stream_type, r.stream_id)) as streams,
  round(count(*)::numeric / extract(epoch from ('1 ' || :'bucket')::interval)::numeric, 2)
    as avg_events_per_second,
  (select max(s.events) from per_second s where s.bucket_start = r.bucket_start) as peak_events_per_second
from in_range r
group by r.bucket_start
order by r.bucket_start;
