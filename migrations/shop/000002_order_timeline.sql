-- The shop's reading aids over the event log: an order's events as readable lines, and read access to the
-- shop schema for the log's read-only role (created by the engine's line, outbox/000003).

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

do $$
begin
  if not exists (select from pg_roles where rolname = 'postbox_reader') then
    return;
  end if;
  grant usage on schema shop to postbox_reader;
  grant select on all tables in schema shop to postbox_reader;
  alter default privileges in schema shop grant select on tables to postbox_reader;
end
$$;
