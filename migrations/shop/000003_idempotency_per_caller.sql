-- idempotency keys belong to the caller that used them. Before, the key was unique across every
-- caller, so a second API key sending a key already used got the first key's order back.
--
-- idempotency_scope is the principal that placed the order (`key:<id>`, `jwt:<sub>`, `api` when auth is
-- off): the `actor` of its OrderPlaced event. Existing orders take it from that event.

alter table shop.orders add column idempotency_scope text not null default '';

update shop.orders o
   set idempotency_scope = coalesce(e.metadata ->> 'actor', '')
  from outbox.events e
 where e.stream_type = 'order' and e.stream_id = o.id::text and e.stream_version = 1;

alter table shop.orders drop constraint orders_idempotency_key_key;
alter table shop.orders
  add constraint orders_idempotency_scope_key_key unique (idempotency_scope, idempotency_key);

comment on column shop.orders.idempotency_scope is
  'Who placed the order (the actor of OrderPlaced): idempotency keys are unique per caller.';
