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

-- Every order event as a readable line: the shape behind "what happened to order X".
create view shop.order_timeline as
select
  e.stream_id as order_id,
  e.stream_version as version,
  e.type,
  e.occurred_at,
  e.occurred_at - first_value(e.occurred_at) over stream as since_placed,
  case e.type
    when 'OrderPlaced' then 'PLACED'
    when 'PaymentSucceeded' then 'PAID'
    when 'PaymentFailed' then 'PAYMENT_FAILED'
    when 'InventoryReserved' then 'RESERVED'
    when 'OrderRejected' then 'REJECTED'
    when 'OrderShipped' then 'SHIPPED'
    when 'OrderCancelled' then 'CANCELLED'
    -- A refund is appended together with the rejection or cancellation it follows.
    when 'PaymentRefunded' then
      case e.payload ->> 'reason' when 'OUT_OF_STOCK' then 'REJECTED' else 'CANCELLED' end
  end as status_after,
  case e.type
    when 'OrderPlaced' then
      format('%s item(s), total %s',
        (select sum((line ->> 'quantity')::int) from jsonb_array_elements(e.payload -> 'lines') line),
        to_char((e.payload ->> 'totalCents')::numeric / 100, 'FM999,999,990.00'))
    when 'PaymentSucceeded' then
      format('paid %s', to_char((e.payload ->> 'amountCents')::numeric / 100, 'FM999,999,990.00'))
    when 'PaymentFailed' then e.payload ->> 'reason'
    when 'InventoryReserved' then
      'reserved ' || (select string_agg(format('%s x%s', line ->> 'sku', line ->> 'quantity'), ', ')
                      from jsonb_array_elements(e.payload -> 'lines') line)
    when 'OrderRejected' then
      'out of stock: ' || (select string_agg(format('%s (%s of %s)', m ->> 'sku', m ->> 'available', m ->> 'requested'), ', ')
                           from jsonb_array_elements(e.payload -> 'missing') m)
    when 'PaymentRefunded' then
      format('refunded %s (%s)', to_char((e.payload ->> 'amountCents')::numeric / 100, 'FM999,999,990.00'),
             e.payload ->> 'reason')
    when 'OrderShipped' then format('%s %s', e.payload ->> 'carrier', e.payload ->> 'trackingNumber')
    when 'OrderCancelled' then format('%s (was %s)', e.payload ->> 'reason', e.payload ->> 'previousStatus')
  end as detail,
  first_value(e.payload ->> 'customerId') over stream as customer_id,
  e.metadata ->> 'actor' as actor,
  e.metadata ->> 'correlationId' as correlation_id,
  e.metadata ->> 'causationId' as causation_id,
  e.id as event_id,
  e.position,
  e.payload
from outbox.events e
where e.stream_type = 'order'
window stream as (partition by e.stream_id order by e.stream_version);

comment on view shop.order_timeline is
  'Every event of every order (stream order/<id>) with the status it leads to and a one-line description. '
  'Filter with order_id = ''<uuid>'' (uses the stream index) and order by version.';
comment on column shop.order_timeline.order_id is 'The order id as text (the stream id of stream order/<id>).';
comment on column shop.order_timeline.version is 'Version of the event in the order''s stream: 1 is OrderPlaced.';
comment on column shop.order_timeline.type is 'Event type: OrderPlaced, PaymentSucceeded, InventoryReserved, OrderShipped, ...';
comment on column shop.order_timeline.occurred_at is 'When it happened (the start of the transaction that appended it).';
comment on column shop.order_timeline.since_placed is 'Time from the OrderPlaced event to this one.';
comment on column shop.order_timeline.status_after is
  'The order status this event leads to (as shop.orders.status would show after it).';
comment on column shop.order_timeline.detail is 'One line for people: amounts in dollars, reasons, tracking number.';
comment on column shop.order_timeline.customer_id is 'From the order''s OrderPlaced event.';
comment on column shop.order_timeline.actor is 'metadata.actor: "api", or "consumer:<name>" for a handler.';
comment on column shop.order_timeline.correlation_id is 'metadata.correlationId: the request that started it all.';
comment on column shop.order_timeline.causation_id is 'metadata.causationId: the event whose handling appended this one.';
comment on column shop.order_timeline.event_id is 'The event''s id (outbox.events.id).';
comment on column shop.order_timeline.position is 'The event''s log position (outbox.events.position).';
comment on column shop.order_timeline.payload is 'The event''s payload, as appended.';

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
        'Postbox: read-only access to the event log (schema outbox) and the shop (schema shop). NOLOGIN: grant it '
        'to a login role (create role alice login password ''...'' in role postbox_reader).';
    exception
      when duplicate_object or unique_violation then
        null; -- another database's migration created it just now
      when insufficient_privilege then
        raise warning 'postbox_reader was not created (%); analysts'' read-only access is not set up', sqlerrm
          using hint = 'As a role administrator: create role postbox_reader nologin; then run the grants of '
                       'migrations/000005_views_and_reader.sql.';
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
  -- The log and the shop, including every table and view added to them later by the migrating role.
  grant usage on schema outbox, shop to postbox_reader;
  grant select on all tables in schema outbox, shop to postbox_reader;
  alter default privileges in schema outbox, shop grant select on tables to postbox_reader;
  -- Nothing else: postbox holds API key hashes and the migration record, graphile_worker the job queue.
  -- The reader never gets these; the revokes make that explicit should anyone have granted them by hand.
  revoke all on schema postbox from postbox_reader;
  revoke all on all tables in schema postbox from postbox_reader;
  if exists (select from pg_namespace where nspname = 'graphile_worker') then
    revoke all on schema graphile_worker from postbox_reader;
    revoke all on all tables in schema graphile_worker from postbox_reader;
  end if;
end
$$;
