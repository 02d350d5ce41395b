-- The wake-up decision moves from the trigger's PL/pgSQL body into its WHEN condition. The executor
-- evaluates WHEN itself, so an append while the relay is awake (every append under load) no longer calls a
-- PL/pgSQL function and runs its query; the function now runs only when a NOTIFY is due.
--
-- pg_sequence_last_value reads the sequence as it is now, whatever the reader's snapshot (the reason the
-- flag is a sequence, see 000007). It is null until the first setval: that means asleep, like the
-- sequence's starting value 1.

create or replace function outbox.wake_relay() returns trigger
language plpgsql as $$
begin
  perform pg_notify('postbox_events', '');
  return null;
end;
$$;

drop trigger events_wake_relay on outbox.events;

-- postbox.notify: 'always' | 'never' | '' (default: only while the relay sleeps). For benchmarks and ops.
create trigger events_wake_relay
  after insert on outbox.events
  for each statement
  when (coalesce(current_setting('postbox.notify', true), '') = 'always'
        or (coalesce(current_setting('postbox.notify', true), '') <> 'never'
            and coalesce(pg_sequence_last_value('outbox.relay_sleeping'), 1) <> 0))
  execute function outbox.wake_relay();

comment on function outbox.wake_relay() is
  'Wakes the relay (NOTIFY postbox_events). Called by the trigger events_wake_relay only when its WHEN '
  'condition says a wake-up is due: the relay is asleep (outbox.relay_sleeping <> 0) or postbox.notify = always.';
