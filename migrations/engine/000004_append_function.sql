-- Appending in SQL: the one implementation of an append, used by the TypeScript API and callable by any
-- producer that speaks SQL (psql, Prisma, Drizzle, TypeORM, psycopg, JDBC...) inside its own transaction.
--
-- Guarantees (the same whoever calls it):
--   * versions 1, 2, 3... per stream without gaps, assigned under the stream's row lock;
--   * expected_version: optimistic concurrency for the stream (0 = must not exist yet); a stale writer gets
--     SQLSTATE PB409 with a JSON detail {"stream_type","stream_id","expected_version","actual_version"};
--   * idempotent ids: an id already in the log is not appended again; its row comes back with duplicate = true;
--   * the log-order raise: log_xid = greatest(this transaction's xid, the stream's last log_xid), so reading
--     in (log_xid, position) order yields every stream in version order (see outbox.events.log_xid);
--   * the wake-up: the insert fires outbox.wake_relay() like any other append.
-- Payloads are not checked against the TypeScript schemas here (Postgres has no zod): the engine validates
-- every event against its registered schema before a handler sees it, and dead-letters one that does not
-- match, naming the field (see the README, "Appending from SQL").

-- Raises SQLSTATE 22023 (invalid_parameter_value) with a message naming the parameter.
create function outbox.refuse_append(parameter text, message text) returns void
language plpgsql as $$
begin
  raise exception 'outbox.append_events: %: %', parameter, message
    using errcode = 'invalid_parameter_value', column = parameter;
end;
$$;
comment on function outbox.refuse_append(text, text) is 'Internal: the error of a refused append.';

create function outbox.append_events(
  stream_type text,
  stream_id text,
  types text[],
  payloads jsonb[],
  metadata jsonb[] default null,
  schema_versions integer[] default null,
  expected_version bigint default null,
  ids uuid[] default null,
  occurred_at timestamptz[] default null,
  require_transaction boolean default false,
  ids_are_new boolean default false
) returns table (event_id uuid, "position" bigint, stream_version integer, log_xid xid8, duplicate boolean)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_variable
declare
  n integer := coalesce(cardinality(types), 0);
  existing uuid[] := '{}';
  fresh integer;
  head_version integer;
  head_xid xid8;
  actual integer;
begin
  -- Checks first, each naming the parameter; the table's constraints back them up.
  -- An implicit transaction starts with its statement, so now() = statement_timestamp() outside BEGIN when
  -- the call came as a simple query (psql). Over the extended protocol now() is the Parse/Bind time and
  -- statement_timestamp() the Execute time, so this cannot see it: appendEvents checks pg clients itself.
  if require_transaction and now() = statement_timestamp() then
    raise exception 'outbox.append_events must run inside a transaction block (BEGIN ... COMMIT)'
      using errcode = 'no_active_sql_transaction',
            hint = 'Outside a transaction the event would commit without the business writes it belongs to.';
  end if;
  if stream_type is null or stream_type !~ '^[A-Za-z][A-Za-z0-9_.-]{0,63}$' then
    perform outbox.refuse_append('stream_type', format('%L is not a stream type (a letter, then up to 63 letters, digits, _ . -)', stream_type));
  end if;
  if stream_id is null or length(stream_id) not between 1 and 200 then
    perform outbox.refuse_append('stream_id', 'must be 1 to 200 characters');
  end if;
  if n = 0 then
    perform outbox.refuse_append('types', 'no events to append');
  end if;
  if n > 10000 then
    perform outbox.refuse_append('types', format('%s events in one call; the limit is 10000', n));
  end if;
  if coalesce(cardinality(payloads), 0) <> n
     or (metadata is not null and cardinality(metadata) <> n)
     or (schema_versions is not null and cardinality(schema_versions) <> n)
     or (ids is not null and cardinality(ids) <> n)
     or (occurred_at is not null and cardinality(occurred_at) <> n) then
    perform outbox.refuse_append('payloads', 'types, payloads, metadata, schema_versions, ids and occurred_at must have one entry per event');
  end if;
  if expected_version is not null and expected_version < 0 then
    perform outbox.refuse_append('expected_version', 'must be 0 (a new stream) or a version');
  end if;
  for i in 1 .. n loop
    if types[i] is null or types[i] !~ '^[A-Za-z][A-Za-z0-9_.-]{0,127}$' then
      perform outbox.refuse_append(format('types[%s]', i), format('%L is not an event type (a letter, then up to 127 letters, digits, _ . -)', types[i]));
    end if;
    if payloads[i] is null then
      perform outbox.refuse_append(format('payloads[%s]', i), 'is null');
    end if;
    -- pg_column_size: the stored (compressed) size, cheap to read; the TypeScript API caps the text at 1 MiB.
    if pg_column_size(payloads[i]) > 1048576 then
      perform outbox.refuse_append(format('payloads[%s]', i), 'is larger than 1 MiB');
    end if;
    if metadata is not null and metadata[i] is not null and jsonb_typeof(metadata[i]) <> 'object' then
      perform outbox.refuse_append(format('metadata[%s]', i), 'must be a JSON object');
    end if;
    if schema_versions is not null and schema_versions[i] < 1 then
      perform outbox.refuse_append(format('schema_versions[%s]', i), 'must be a positive integer');
    end if;
  end loop;

  -- Idempotent ids: those already in the log are not appended again. One id twice in a call is a mistake.
  -- ids_are_new: the caller vouches the ids were just generated (random UUIDs); the look-up is skipped, and
  -- an id that exists after all fails on the unique constraint (23505) instead of being skipped.
  if ids is not null and not ids_are_new then
    if n > 1 and (select count(distinct x) from unnest(ids) x) <> n then
      perform outbox.refuse_append('ids', 'an id appears twice in one call');
    end if;
    select coalesce(array_agg(e.id), '{}') into existing from outbox.events e where e.id = any (ids);
  end if;
  fresh := n - cardinality(existing);

  if cardinality(existing) = 0 then
    -- The common path: one statement locks (or creates) the stream row and inserts every event. The stream
    -- row is the lock that serialises appends to one stream; its log_xid only grows.
    if expected_version is null then
      return query
        with head as (
          insert into outbox.streams as s (stream_type, stream_id, version, log_xid)
          values (stream_type, stream_id, n, pg_current_xact_id())
          on conflict on constraint streams_pkey do update
            set version = s.version + excluded.version, log_xid = greatest(s.log_xid, excluded.log_xid),
                updated_at = now()
          returning s.version, s.log_xid)
        insert into outbox.events as e
          (id, log_xid, stream_type, stream_id, stream_version, type, schema_version, payload, metadata, occurred_at)
        select coalesce(x.id, gen_random_uuid()), head.log_xid, stream_type, stream_id, head.version - n + x.ord::int,
               x.type, coalesce(x.schema_version, 1), x.payload, coalesce(x.metadata, '{}'), coalesce(x.occurred_at, now())
        from head, unnest(ids, types, payloads, metadata, schema_versions, occurred_at)
               with ordinality as x(id, type, payload, metadata, schema_version, occurred_at, ord)
        order by x.ord
        returning e.id, e.position, e.stream_version, e.log_xid, false;
      return;
    elsif expected_version = 0 then
      return query
        with head as (
          insert into outbox.streams as s (stream_type, stream_id, version, log_xid)
          values (stream_type, stream_id, n, pg_current_xact_id())
          on conflict on constraint streams_pkey do nothing
          returning s.version, s.log_xid)
        insert into outbox.events as e
          (id, log_xid, stream_type, stream_id, stream_version, type, schema_version, payload, metadata, occurred_at)
        select coalesce(x.id, gen_random_uuid()), head.log_xid, stream_type, stream_id, head.version - n + x.ord::int,
               x.type, coalesce(x.schema_version, 1), x.payload, coalesce(x.metadata, '{}'), coalesce(x.occurred_at, now())
        from head, unnest(ids, types, payloads, metadata, schema_versions, occurred_at)
               with ordinality as x(id, type, payload, metadata, schema_version, occurred_at, ord)
        order by x.ord
        returning e.id, e.position, e.stream_version, e.log_xid, false;
    else
      return query
        with head as (
          update outbox.streams as s
          set version = s.version + n, log_xid = greatest(s.log_xid, pg_current_xact_id()), updated_at = now()
          where s.stream_type = stream_type and s.stream_id = stream_id and s.version = expected_version
          returning s.version, s.log_xid)
        insert into outbox.events as e
          (id, log_xid, stream_type, stream_id, stream_version, type, schema_version, payload, metadata, occurred_at)
        select coalesce(x.id, gen_random_uuid()), head.log_xid, stream_type, stream_id, head.version - n + x.ord::int,
               x.type, coalesce(x.schema_version, 1), x.payload, coalesce(x.metadata, '{}'), coalesce(x.occurred_at, now())
        from head, unnest(ids, types, payloads, metadata, schema_versions, occurred_at)
               with ordinality as x(id, type, payload, metadata, schema_version, occurred_at, ord)
        order by x.ord
        returning e.id, e.position, e.stream_version, e.log_xid, false;
    end if;
    if found then
      return;
    end if;
    -- The stream statement matched nothing: expected_version was stale.
    select s.version into actual from outbox.streams s where s.stream_type = stream_type and s.stream_id = stream_id;
    raise exception 'stream %/% is at version %, not the expected %', stream_type, stream_id, coalesce(actual, 0),
        expected_version
      using errcode = 'PB409',
            detail = json_build_object('stream_type', stream_type, 'stream_id', stream_id,
                                       'expected_version', expected_version,
                                       'actual_version', coalesce(actual, 0))::text,
            hint = 'Another writer appended to the stream since you read it: read it again and retry.';
  end if;

  -- Some ids are already in the log (a retried command). If all are, nothing is written and the expected
  -- version is not checked: the append already happened.
  if fresh > 0 then
    if expected_version is null then
      insert into outbox.streams as s (stream_type, stream_id, version, log_xid)
      values (stream_type, stream_id, fresh, pg_current_xact_id())
      on conflict on constraint streams_pkey do update
        set version = s.version + excluded.version, log_xid = greatest(s.log_xid, excluded.log_xid),
            updated_at = now()
      returning s.version, s.log_xid into head_version, head_xid;
    elsif expected_version = 0 then
      insert into outbox.streams as s (stream_type, stream_id, version, log_xid)
      values (stream_type, stream_id, fresh, pg_current_xact_id())
      on conflict on constraint streams_pkey do nothing
      returning s.version, s.log_xid into head_version, head_xid;
    else
      update outbox.streams as s
      set version = s.version + fresh, log_xid = greatest(s.log_xid, pg_current_xact_id()), updated_at = now()
      where s.stream_type = stream_type and s.stream_id = stream_id and s.version = expected_version
      returning s.version, s.log_xid into head_version, head_xid;
    end if;
    if head_version is null then
      select s.version into actual from outbox.streams s where s.stream_type = stream_type and s.stream_id = stream_id;
      raise exception 'stream %/% is at version %, not the expected %', stream_type, stream_id, coalesce(actual, 0),
          expected_version
        using errcode = 'PB409',
              detail = json_build_object('stream_type', stream_type, 'stream_id', stream_id,
                                         'expected_version', expected_version,
                                         'actual_version', coalesce(actual, 0))::text,
              hint = 'Another writer appended to the stream since you read it: read it again and retry.';
    end if;
    return query
      insert into outbox.events as e
        (id, log_xid, stream_type, stream_id, stream_version, type, schema_version, payload, metadata, occurred_at)
      select coalesce(x.id, gen_random_uuid()), head_xid, stream_type, stream_id,
             head_version - fresh + (row_number() over (order by x.ord))::int,
             x.type, coalesce(x.schema_version, 1), x.payload, coalesce(x.metadata, '{}'), coalesce(x.occurred_at, now())
      from unnest(ids, types, payloads, metadata, schema_versions, occurred_at)
             with ordinality as x(id, type, payload, metadata, schema_version, occurred_at, ord)
      where x.id is null or not (x.id = any (existing))
      order by x.ord
      returning e.id, e.position, e.stream_version, e.log_xid, false;
  end if;
  return query
    select e.id, e.position, e.stream_version, e.log_xid, true
    from outbox.events e where e.id = any (existing);
end;
$$;

comment on function outbox.append_events(text, text, text[], jsonb[], jsonb[], integer[], bigint, uuid[], timestamptz[], boolean, boolean) is
  'Appends events to one stream in the caller''s transaction: versions without gaps, optional expected_version '
  '(SQLSTATE PB409 on conflict), idempotent ids (duplicate = true), log order, wake-up. One row per event: the '
  'appended ones in input order, then the duplicates. require_transaction => true refuses a call sent as a '
  'simple query outside BEGIN ... COMMIT (SQLSTATE 25P01), as psql sends it; over the extended protocol '
  '(parameters) an implicit transaction cannot be told apart, so drivers must open the transaction themselves. '
  'ids_are_new => true skips the duplicate look-up for ids just generated.';

create function outbox.append_event(
  stream_type text,
  stream_id text,
  type text,
  payload jsonb,
  metadata jsonb default null,
  schema_version integer default 1,
  expected_version bigint default null,
  id uuid default null,
  occurred_at timestamptz default null
) returns table (event_id uuid, "position" bigint, stream_version integer, log_xid xid8, duplicate boolean)
language sql
set search_path = pg_catalog, pg_temp
as $$
  select * from outbox.append_events(
    stream_type => append_event.stream_type,
    stream_id => append_event.stream_id,
    types => array[append_event.type],
    payloads => array[append_event.payload],
    metadata => array[append_event.metadata],
    schema_versions => array[append_event.schema_version],
    expected_version => append_event.expected_version,
    ids => case when append_event.id is null then null else array[append_event.id] end,
    occurred_at => array[append_event.occurred_at])
$$;

comment on function outbox.append_event(text, text, text, jsonb, jsonb, integer, bigint, uuid, timestamptz) is
  'Appends one event: outbox.append_event(stream_type => ..., stream_id => ..., type => ..., payload => ... '
  '[, metadata, schema_version, expected_version, id, occurred_at]). Same guarantees as outbox.append_events.';
