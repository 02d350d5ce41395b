-- The relay's "asleep" flag moves from a table row to a sequence. A row is read through the reader's
-- snapshot: a REPEATABLE READ (or SERIALIZABLE) writer whose snapshot predates the relay going to sleep read
-- "awake", sent no NOTIFY, and — its transaction id being assigned only at its first write, after the relay
-- had taken its horizon — was not waited for either: its events waited for the next poll. A sequence's value
-- is read as it is now, whatever the snapshot (setval is not transactional), so every append that starts
-- after the relay marks itself asleep sees it.

-- 1 = asleep (writers NOTIFY), 0 = awake. Starts asleep, as a missing relay_state row did.
create sequence outbox.relay_sleeping minvalue 0 maxvalue 1 start 1 no cycle;
comment on sequence outbox.relay_sleeping is
  'Relay wake-up hint, read without a snapshot: 1 = the relay sleeps and appends send a NOTIFY, 0 = awake.';

create or replace function outbox.wake_relay() returns trigger
language plpgsql as $$
declare
  mode text := coalesce(current_setting('postbox.notify', true), '');
begin
  -- postbox.notify: 'always' | 'never' | '' (default: only while the relay sleeps). For benchmarks/ops.
  if mode = 'always'
     or (mode <> 'never' and (select last_value from outbox.relay_sleeping) <> 0) then
    perform pg_notify('postbox_events', '');
  end if;
  return null;
end;
$$;

-- Replaced by the sequence.
drop table outbox.relay_state;
