-- A stream's full history: every event of one stream, oldest first.
--
-- What happened to one order (or product), step by step: when, who did it (the API or a handler), which
-- event caused it, and the payload. Versions run 1, 2, 3... without gaps.
--
-- Parameters:
--   :'stream_type'  the stream type: order or product
--   :'stream_id'    the stream id: an order id (uuid) or a product SKU
--
-- Example:
--   psql "$DATABASE_URL" -v stream_type=order -v stream_id=6f1c2a7e-... -f sql/stream_history.sql
--   postbox sql stream_history --var stream_type=order --var stream_id=6f1c2a7e-...

select
  e.stream_version as version,
  e.type,
  e.occurred_at,
  e.position,
  e.metadata ->> 'actor' as actor,
  cause.type as caused_by,
  e.metadata ->> 'correlationId' as correlation_id,
  e.payload
from outbox.events e
left join outbox.events cause
  -- causationId is the id of the event whose handler appended this one (a uuid when the engine set it)
  on cause.id = case
    when e.metadata ->> 'causationId' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
      then (e.metadata ->> 'causationId')::uuid
  end
where e.stream_type = :'stream_type'
  and e.stream_id = :'stream_id'
order by e.stream_version;
