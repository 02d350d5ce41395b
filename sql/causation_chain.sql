-- Everything one request caused, as a causation tree in causal order.
--
-- Every event carrying the correlation id (the API request's x-correlation-id; the demo uses
-- demo-<run>-<n>), across all streams, arranged by causation: each event under the event whose handler
-- appended it (metadata.causationId), depth first. Roots are the events the request itself appended.
--
-- Parameters:
--   :'correlation_id'  the correlation id shared by the events
--
-- Example:
--   psql "$DATABASE_URL" -v correlation_id=demo-3f9a1c-0 -f sql/causation_chain.sql
--   postbox sql causation_chain --var correlation_id=demo-3f9a1c-0

with recursive related as (
  select e.id, e.position, e.type, e.stream_type, e.stream_id, e.stream_version, e.occurred_at,
         e.metadata ->> 'actor' as actor,
         e.metadata ->> 'causationId' as causation_id
  from outbox.events e
  where e.metadata ? 'correlationId'
    and e.metadata ->> 'correlationId' = :'correlation_id'
),
tree as (
  -- Roots: events not caused by another event of this correlation.
  select r.id, 0 as depth, array[r.position] as path, null::text as caused_by
  from related r
  where r.causation_id is null
     or not exists (select from related parent where parent.id::text = r.causation_id)
  union all
  select child.id, tree.depth + 1, tree.path || child.position, parent.type
  from tree
  join related parent on parent.id = tree.id
  join related child on child.causation_id = parent.id::text
  where tree.depth < 100
)
select
  tree.depth,
  repeat('  ', tree.depth) || r.type as event,
  r.stream_type,
  r.stream_id,
  r.stream_version as version,
  tree.caused_by,
  r.actor,
  r.occurred_at,
  r.position
from tree
join related r on r.id = tree.id
order by tree.path;
