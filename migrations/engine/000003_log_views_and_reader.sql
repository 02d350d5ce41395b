-- Querying the event log: views for the most used shapes, and a read-only role for analysts.
-- The queries in sql/ build on these; `\d+ outbox.stream_heads` (etc.) in psql shows the documentation below.

-- One row per stream: how far it has got and what happened last.
create view outbox.stream_heads as
select
  s.stream_type,
  s.stream_id,
  s.version,
  first_event.occurred_at as first_event_at,
  last_event.type as last_event_type,
  last_event.occurred_at as last_event_at,
  last_event.position as last_position,
  last_event.metadata ->> 'correlationId' as last_correlation_id
from outbox.streams s
left join outbox.events first_event
  on first_event.stream_type = s.stream_type
  and first_event.stream_id = s.stream_id
  and first_event.stream_version = 1
left join outbox.events last_event
  on last_event.stream_type = s.stream_type
  and last_event.stream_id = s.stream_id
  and last_event.stream_version = s.version;

comment on view outbox.stream_heads is
  'One row per stream (e.g. order/<id>, product/<sku>): its current version (= number of events), when it '
  'started, and its latest event. Filter by stream_type/stream_id; both lookups use the primary keys.';
comment on column outbox.stream_heads.stream_type is 'Kind of stream: order or product in the shop.';
comment on column outbox.stream_heads.stream_id is 'The stream''s id within its type: an order id, a SKU.';
comment on column outbox.stream_heads.version is 'Current version of the stream: its event count (versions are 1..n without gaps).';
comment on column outbox.stream_heads.first_event_at is 'occurred_at of version 1.';
comment on column outbox.stream_heads.last_event_type is 'Type of the event at the current version.';
comment on column outbox.stream_heads.last_event_at is 'occurred_at of the event at the current version.';
comment on column outbox.stream_heads.last_position is 'Log position of the event at the current version.';
comment on column outbox.stream_heads.last_correlation_id is 'metadata.correlationId of the latest event.';

-- A read-only role for analysts. Roles are cluster-wide while this file runs once per database, possibly in
-- several databases of one server at the same time: create the role only if it is missing, and tolerate
-- losing that race. A migrating user that may not create roles (some hosted plans) gets a warning, not a
-- failed migration: an administrator can create the role and re-run the grants below (see the README).
do $$
begin
  if not exists (select from pg_roles where rolname = 'postbox_reader') then
    begin
      create role postbox_reader nologin;
      comment on role postbox_reader is
        'Postbox: read-only access to the event log (schema outbox; applications grant their own schemas). NOLOGIN: grant it '
        'to a login role (create role alice login password ''...'' in role postbox_reader).';
    exception
      when duplicate_object or unique_violation then
        null; -- another database's migration created it just now
      when insufficient_privilege then
        raise warning 'postbox_reader was not created (%); analysts'' read-only access is not set up', sqlerrm
          using hint = 'As a role administrator: create role postbox_reader nologin; then run the grants of '
                       'migrations/engine/000003_log_views_and_reader.sql.';
    end;
  end if;
end
$$;

do $$
begin
  if not exists (select from pg_roles where rolname = 'postbox_reader') then
    return;
  end if;
  begin
    execute format('grant connect on database %I to postbox_reader', current_database());
  exception when insufficient_privilege then
    null; -- not the database owner: PUBLIC's default CONNECT privilege still lets members in
  end;
  -- The log, including every table and view added to it later by the migrating role.
  grant usage on schema outbox to postbox_reader;
  grant select on all tables in schema outbox to postbox_reader;
  alter default privileges in schema outbox grant select on tables to postbox_reader;
  -- Nothing else: graphile_worker holds the job queue. The reader never gets it; the revokes make that
  -- explicit should anyone have granted it by hand. (Applications grant the reader their own schemas.)
  if exists (select from pg_namespace where nspname = 'graphile_worker') then
    revoke all on schema graphile_worker from postbox_reader;
    revoke all on all tables in schema graphile_worker from postbox_reader;
  end if;
end
$$;
