-- The event log: Postbox's permanent, ordered, typed record of everything that happened.
-- It is a public interface: users query it with plain SQL (see sql/ and the README).

create schema if not exists outbox;
comment on schema outbox is 'Postbox: the event log, its streams, and the state of its consumers.';

create table outbox.events (
  position bigint generated always as identity primary key,
  id uuid not null,
  transaction_id xid8 not null default pg_current_xact_id(),
  log_xid xid8 not null,
  stream_type text not null check (stream_type ~ '^[A-Za-z][A-Za-z0-9_.-]{0,63}$'),
  stream_id text not null check (length(stream_id) between 1 and 200),
  stream_version integer not null check (stream_version > 0),
  type text not null check (type ~ '^[A-Za-z][A-Za-z0-9_.-]{0,127}$'),
  schema_version integer not null default 1 check (schema_version > 0),
  payload jsonb not null,
  metadata jsonb not null default '{}'::jsonb,
  occurred_at timestamptz not null default now(),
  constraint events_id_key unique (id),
  constraint events_stream_version_key unique (stream_type, stream_id, stream_version)
);

comment on table outbox.events is
  'Every event ever appended, never updated or deleted. Read it in log order with '
  '"order by log_xid, position" and, for a read that must not skip a later-committing transaction, only rows '
  'with log_xid < pg_snapshot_xmin(pg_current_snapshot()).';
comment on column outbox.events.position is 'Assigned at insert; unique and increasing, but NOT commit order.';
comment on column outbox.events.id is 'Client-suppliable event id; appending an id that exists is a no-op.';
comment on column outbox.events.transaction_id is 'The writing transaction (pg_current_xact_id()).';
comment on column outbox.events.log_xid is
  'Read-order key: the writer''s transaction id, raised to the stream''s previous log_xid when that is larger, '
  'so that (log_xid, position) order agrees with stream_version order within every stream.';
comment on column outbox.events.stream_version is '1, 2, 3... within (stream_type, stream_id), without gaps.';
comment on column outbox.events.schema_version is 'Version of the payload schema of this event type.';
comment on column outbox.events.metadata is
  'correlationId, causationId, actor, traceparent (W3C) and any caller-supplied keys.';

-- Gap-safe log order (relay, consumers, subscriptions, cursors).
create index events_log_order_idx on outbox.events (log_xid, position);
-- By type over time (reports, filtered history).
create index events_type_time_idx on outbox.events (type, occurred_at);
-- Everything one request caused.
create index events_correlation_idx on outbox.events ((metadata ->> 'correlationId'))
  where metadata ? 'correlationId';
-- Time-range scans over the whole log; BRIN because occurred_at follows insertion order.
create index events_occurred_at_brin on outbox.events using brin (occurred_at);

-- The log is append-only: the engine never updates or deletes, and neither may anyone else by mistake.
create function outbox.forbid_event_changes() returns trigger
language plpgsql as $$
begin
  raise exception 'outbox.events is append-only (% refused)', tg_op
    using errcode = 'restrict_violation',
          hint = 'Events are permanent. To correct one, append a compensating event.';
end;
$$;
create trigger events_append_only
  before update or delete on outbox.events
  for each row execute function outbox.forbid_event_changes();
create trigger events_no_truncate
  before truncate on outbox.events
  for each statement execute function outbox.forbid_event_changes();

-- One row per stream: its current version, and the row lock that orders concurrent appends to it.
create table outbox.streams (
  stream_type text not null,
  stream_id text not null,
  version integer not null check (version > 0),
  log_xid xid8 not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (stream_type, stream_id)
);
comment on table outbox.streams is
  'Head of every stream. Appends lock the stream''s row, so versions are assigned without gaps or races.';

-- Wake-up hints. The relay marks itself asleep here before it waits for a notification; writers send a
-- NOTIFY only then. A NOTIFY takes a database-wide lock held through the commit's WAL flush, which halves
-- write throughput under concurrency, so while the relay is awake (it is under load) writers skip it.
-- Unlogged: a crash loses only a hint, and a missing row means "asleep" (notify).
create unlogged table outbox.relay_state (
  id boolean primary key default true check (id),
  sleeping boolean not null,
  updated_at timestamptz not null default now()
);

create function outbox.wake_relay() returns trigger
language plpgsql as $$
declare
  mode text := coalesce(current_setting('postbox.notify', true), '');
begin
  -- postbox.notify: 'always' | 'never' | '' (default: only while the relay sleeps). For benchmarks/ops.
  if mode = 'always'
     or (mode <> 'never' and not exists (select 1 from outbox.relay_state where not sleeping)) then
    perform pg_notify('postbox_events', '');
  end if;
  return null;
end;
$$;
-- Statement-level: one NOTIFY per appending statement at most, and Postgres folds identical
-- notifications of one transaction into one.
create trigger events_wake_relay
  after insert on outbox.events
  for each statement execute function outbox.wake_relay();

-- Which partition of a consumer a stream belongs to. Stable across Postgres versions (it is the hash
-- used by hash partitioning).
create function outbox.partition_of(stream_id text, partitions integer) returns integer
language sql immutable strict parallel safe as $$
  select ((hashtextextended(stream_id, 0) & 9223372036854775807) % partitions)::integer
$$;
comment on function outbox.partition_of(text, integer) is
  'The partition (0 .. partitions-1) that delivers a stream''s events, in order, for a consumer.';
