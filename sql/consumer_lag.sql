-- Consumer lag: per consumer, how far behind it is and what is stuck.
--
-- Sums the engine's outbox.consumer_lag view (one row per consumer partition) per consumer: events not yet
-- delivered (lag) and the age of the oldest, streams retrying or blocked, open dead letters, events
-- handled so far, and the last time a partition made progress. For the per-partition detail:
--   select * from outbox.consumer_lag where consumer = 'payment' order by partition;
--
-- Parameters: none
--
-- Example:
--   psql "$DATABASE_URL" -f sql/consumer_lag.sql
--   postbox sql consumer_lag

select
  l.consumer,
  l.status,
  count(*) as partitions,
  sum(l.lag) as lag,
  now() - min(l.oldest_pending_at) as oldest_pending_age,
  sum(l.retrying) as retrying,
  sum(l.blocked) as blocked,
  sum(l.dead_letters) as dead_letters,
  sum(l.handled) as handled,
  max(l.updated_at) as last_progress_at
from outbox.consumer_lag l
group by l.consumer, l.status
order by l.consumer;
