-- Recent delivery attempts of a destination (webhook), for debugging a failing receiver.
--
-- The last attempts kept for one destination (outbox.destination_attempts keeps about 200 each), newest
-- first: when, which event and attempt, the outcome (delivered, failed, deferred while the circuit was
-- open, ping from postbox destinations test), the HTTP status (empty: no response), the duration, the error
-- and the first bytes of the response. Signing secrets are never here.
--
-- Parameters:
--   :'destination'  the destination's name
--   :'limit'        how many attempts to list
--
-- Example:
--   psql "$DATABASE_URL" -v destination=billing -v limit=20 -f sql/destination_attempts.sql
--   postbox sql destination_attempts --var destination=billing --var limit=20

select
  a.at,
  a.event_id,
  a.attempt,
  a.outcome,
  a.status,
  a.duration_ms,
  a.error,
  a.response_snippet
from outbox.destination_recent_attempts a
where a.destination = :'destination'
order by a.at desc
limit :'limit'::integer;
