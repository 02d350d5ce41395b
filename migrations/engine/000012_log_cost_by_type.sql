-- The cost of delivery must not grow with the size of the log. A consumer reads only its event types, but
-- the log-order index (log_xid, position) holds every event: a reader that walks it from a checkpoint and
-- filters by type pays for every event of every other type in between — millions, for a consumer of a rare
-- type behind a busy log. With the type leading, each of a consumer's types is its own ordered range: the
-- relay's poll, the drain's batch and the lag view read the consumer's events only.
--
-- Building it on a large log takes a while and blocks appends meanwhile (a migration runs in a transaction,
-- so not CONCURRENTLY). `if not exists`: an operator may build it beforehand with CREATE INDEX CONCURRENTLY
-- (see the README, "A large log").
create index if not exists events_type_log_order_idx on outbox.events (type, log_xid, position);

-- It replaces the index by type and time (000001): the API's type filters read in log order, which this one
-- serves directly; a type over a time range is found through either index and filtered by the other column.
-- Every index costs each append a B-tree insert, so the log keeps the count it had.
drop index if exists outbox.events_type_time_idx;

-- A consumer partition's head (its last event in log order) and its backlog (events after the checkpoint,
-- and the oldest of them), read through the index above one event type at a time. Written so that only
-- that index fits (the engine's statements do the same): the type is compared as a range
-- (type >= t and type <= t), never with =, and leads the order and the checkpoint comparison
-- (type, log_xid, position) > (t, checkpoint). With `type = t` the planner treats the type as a constant,
-- and then walking the log-order index and filtering by type looks as good to it — it cannot know how rare
-- a consumer's types are — and reads the whole log for a rare one.
-- A function with JIT off: its estimates grow with the log (the planner cannot know how few events of a
-- type there are), and past jit_above_cost compiling the view's plan took longer than running it. PL/pgSQL:
-- its plan is kept for the session, where a SQL function's would be made again for every partition.
create function outbox.partition_backlog(
  wanted_types text[],
  wanted_stream_types text[],
  partition_count integer,
  partition_index integer,
  after_xid xid8,
  after_position bigint,
  out head bigint,
  out events bigint,
  out oldest_at timestamptz
)
language plpgsql stable
set jit = off
as $$
begin
  select
    (select last.position
     from unnest(wanted_types) as t(type)
     cross join lateral (
       select e.log_xid, e.position
       from outbox.events e
       where e.type >= t.type and e.type <= t.type
         and (wanted_stream_types is null or e.stream_type = any (wanted_stream_types))
         and outbox.partition_of(e.stream_id, partition_count) = partition_index
       order by e.type desc, e.log_xid desc, e.position desc
       limit 1
     ) last
     order by last.log_xid desc, last.position desc
     limit 1),
    pending.events,
    pending.oldest_at
  from (
    select coalesce(sum(n.events), 0)::bigint as events, min(n.oldest_at) as oldest_at
    from unnest(wanted_types) as t(type)
    cross join lateral (
      select count(*) as events, min(e.occurred_at) as oldest_at
      from outbox.events e
      where e.type >= t.type and e.type <= t.type
        and (e.type, e.log_xid, e.position) > (t.type, after_xid, after_position)
        and (wanted_stream_types is null or e.stream_type = any (wanted_stream_types))
        and outbox.partition_of(e.stream_id, partition_count) = partition_index
    ) n
  ) pending
  into head, events, oldest_at;
end;
$$;
comment on function outbox.partition_backlog(text[], text[], integer, integer, xid8, bigint) is
  'Internal (outbox.consumer_lag): a consumer partition''s last event and the events after a checkpoint, read '
  'by event type (events_type_log_order_idx), so the cost follows the consumer''s events, not the log.';

-- Same columns as before. head: the partition's last event in log order (the view used to give its largest
-- position, which is the same event unless two transactions committed out of position order).
create or replace view outbox.consumer_lag as
select
  c.name as consumer,
  p.partition,
  c.status,
  p.checkpoint_position as checkpoint,
  coalesce(backlog.head, 0) as head,
  coalesce(backlog.events, 0) as lag,
  backlog.oldest_at as oldest_pending_at,
  coalesce(blocked.retrying, 0) as retrying,
  coalesce(blocked.parked, 0) as blocked,
  coalesce(dead.open, 0) as dead_letters,
  p.handled,
  p.updated_at
from outbox.consumers c
join outbox.consumer_partitions p on p.consumer = c.name
left join lateral outbox.partition_backlog(
  c.event_types, c.stream_types, c.partitions, p.partition, p.checkpoint_xid, p.checkpoint_position
) backlog on true
left join lateral (
  select count(*) filter (where b.next_attempt_at is not null)::bigint as retrying,
         count(*) filter (where b.next_attempt_at is null)::bigint as parked
  from outbox.blocked_streams b
  where b.consumer = c.name and b.partition = p.partition
) blocked on true
left join lateral (
  select count(*)::bigint as open
  from outbox.dead_letters d
  where d.consumer = c.name and d.partition = p.partition and d.redriven_at is null
) dead on true;
comment on view outbox.consumer_lag is
  'Per consumer partition: checkpoint and head positions (head: its last event in log order), events not yet '
  'delivered (lag), the oldest of them, streams retrying or blocked, and open dead letters. Reads only the '
  'consumer''s event types (events_type_log_order_idx): its cost follows the consumer''s events, not the log''s.';
