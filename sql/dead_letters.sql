-- Dead letters: the events consumers gave up on, with their last error.
--
-- Every event a consumer exhausted its attempts on, newest first, open ones before redriven ones: which
-- consumer, which event and stream, how many attempts, the last error, and whether a redrive was asked for
-- or done (postbox dead-letters / redriveDeadLetters). The error stack is in outbox.dead_letters.error_stack.
--
-- Parameters: none
--
-- Example:
--   psql "$DATABASE_URL" -f sql/dead_letters.sql
--   postbox sql dead_letters

select
  d.id,
  d.consumer,
  case
    when d.redriven_at is not null then 'redriven'
    when d.redrive_requested_at is not null then 'redrive requested'
    else 'open'
  end as state,
  d.event_type,
  d.stream_type,
  d.stream_id,
  d.stream_version,
  d.attempts,
  d.last_error,
  d.first_failed_at,
  d.dead_at,
  d.event_position
from outbox.dead_letters d
order by d.redriven_at is not null, d.dead_at desc, d.id desc;
