-- Consumers: who receives which events, how far each partition has got, and what is stuck.

create table outbox.consumers (
  name text primary key check (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
  event_types text[] not null check (cardinality(event_types) > 0),
  stream_types text[] check (stream_types is null or cardinality(stream_types) > 0),
  partitions integer not null check (partitions between 1 and 256),
  status text not null default 'active' check (status in ('active', 'paused')),
  on_exhausted text not null default 'dead_letter' check (on_exhausted in ('dead_letter', 'block')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table outbox.consumers is
  'Registered consumers (handlers). Rows are written at start-up from the code''s consumer definitions.';
comment on column outbox.consumers.on_exhausted is
  'After max attempts: dead_letter = record it and let the stream continue; block = the stream waits for an operator.';

-- One row per (consumer, partition). The checkpoint is a point in log order (log_xid, position): every event
-- of the partition at or before it is settled for the consumer (handled, or parked in blocked_streams).
-- A drainer holds a transaction-scoped advisory lock on (consumer, partition) while it works, so each
-- partition has one drainer at a time (advisory, not this row's lock: a row lock would give the drain
-- transaction an xid before it reads, holding back its own gap-safe read horizon).
create table outbox.consumer_partitions (
  consumer text not null references outbox.consumers (name) on delete cascade,
  partition integer not null check (partition >= 0),
  checkpoint_xid xid8 not null default '0',
  checkpoint_position bigint not null default 0,
  handled bigint not null default 0,
  updated_at timestamptz not null default now(),
  primary key (consumer, partition)
);
comment on table outbox.consumer_partitions is
  'Progress of each consumer partition: the last settled point in log order (checkpoint_xid, checkpoint_position).';

-- A stream held for one consumer: its head event failed. Later events of the stream wait behind it (they are
-- past the checkpoint, so they are found again by (stream, version) when the head succeeds).
create table outbox.blocked_streams (
  consumer text not null references outbox.consumers (name) on delete cascade,
  stream_type text not null,
  stream_id text not null,
  partition integer not null,
  event_position bigint not null references outbox.events (position),
  stream_version integer not null,
  attempts integer not null check (attempts >= 0),
  next_attempt_at timestamptz,
  last_error text not null,
  first_failed_at timestamptz not null default now(),
  last_failed_at timestamptz not null default now(),
  primary key (consumer, stream_type, stream_id)
);
create index blocked_streams_due_idx on outbox.blocked_streams (consumer, partition, next_attempt_at);
comment on table outbox.blocked_streams is
  'Streams waiting on a failed event for one consumer. next_attempt_at null = parked until an operator redrives it.';

create table outbox.dead_letters (
  id bigint generated always as identity primary key,
  consumer text not null references outbox.consumers (name) on delete cascade,
  partition integer not null,
  event_position bigint not null references outbox.events (position),
  event_id uuid not null,
  stream_type text not null,
  stream_id text not null,
  stream_version integer not null,
  event_type text not null,
  attempts integer not null,
  last_error text not null,
  error_stack text,
  first_failed_at timestamptz not null,
  dead_at timestamptz not null default now(),
  redrive_requested_at timestamptz,
  redriven_at timestamptz
);
create unique index dead_letters_open_idx on outbox.dead_letters (consumer, event_position) where redriven_at is null;
create index dead_letters_redrive_idx on outbox.dead_letters (consumer, partition)
  where redrive_requested_at is not null and redriven_at is null;
comment on table outbox.dead_letters is
  'Events a consumer gave up on after its max attempts. Kept as history after a redrive (redriven_at set).';

-- Per consumer and partition: where it is, how far behind, what is stuck.
create view outbox.consumer_lag as
select
  c.name as consumer,
  p.partition,
  c.status,
  p.checkpoint_position as checkpoint,
  coalesce(head.position, 0) as head,
  coalesce(pending.events, 0) as lag,
  pending.oldest_at as oldest_pending_at,
  coalesce(blocked.retrying, 0) as retrying,
  coalesce(blocked.parked, 0) as blocked,
  coalesce(dead.open, 0) as dead_letters,
  p.handled,
  p.updated_at
from outbox.consumers c
join outbox.consumer_partitions p on p.consumer = c.name
left join lateral (
  select e.position
  from outbox.events e
  where e.type = any (c.event_types)
    and (c.stream_types is null or e.stream_type = any (c.stream_types))
    and outbox.partition_of(e.stream_id, c.partitions) = p.partition
  order by e.position desc
  limit 1
) head on true
left join lateral (
  select count(*)::bigint as events, min(e.occurred_at) as oldest_at
  from outbox.events e
  where (e.log_xid, e.position) > (p.checkpoint_xid, p.checkpoint_position)
    and e.type = any (c.event_types)
    and (c.stream_types is null or e.stream_type = any (c.stream_types))
    and outbox.partition_of(e.stream_id, c.partitions) = p.partition
) pending on true
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
  'Per consumer partition: checkpoint and head positions, events not yet delivered (lag), the oldest of them, '
  'streams retrying or blocked, and open dead letters.';
