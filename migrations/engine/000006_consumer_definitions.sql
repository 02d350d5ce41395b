-- Versions of each consumer's definition (which event and stream types its code handles), so that old and
-- new code can run side by side during a rolling deploy. outbox.consumers.event_types / stream_types
-- become the union of the definitions that are live: registered or heartbeated by a running process within
-- the lease. A drain delivers only what its own code's definition handles and stops before the first event
-- that only another live definition handles, leaving it to that code.

create table outbox.consumer_definitions (
  consumer text not null references outbox.consumers (name) on delete cascade,
  -- A digest of the handled event and stream types: equal definitions share a row.
  definition text not null,
  event_types text[] not null check (cardinality(event_types) > 0),
  stream_types text[] check (stream_types is null or cardinality(stream_types) > 0),
  first_seen_at timestamptz not null default now(),
  -- Refreshed by every running process that has this definition; older than the lease = retired.
  last_seen_at timestamptz not null default now(),
  primary key (consumer, definition)
);
comment on table outbox.consumer_definitions is
  'Each distinct definition (event and stream types) a consumer has been run with, and when a process running it '
  'was last seen. outbox.consumers holds the union of the live ones.';

-- What was registered before: one definition, live until its lease runs out (the code that runs it
-- registers its own on start).
insert into outbox.consumer_definitions (consumer, definition, event_types, stream_types)
select name, 'registered-before-000006', event_types, stream_types from outbox.consumers;
