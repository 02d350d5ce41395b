import type pg from 'pg';

/** Marks the relay asleep: from now on, appending transactions send a wake-up NOTIFY. */
export async function markRelayAsleep(client: pg.ClientBase): Promise<void> {
  await client.query(
    `insert into outbox.relay_state (sleeping) values (true)
     on conflict (id) do update set sleeping = true, updated_at = now()`,
  );
}

/**
 * The first transaction id not yet assigned: every transaction that may have read "awake" (and so not
 * notified) started below it.
 */
export async function readSnapshotXmax(client: pg.ClientBase): Promise<string> {
  const { rows } = await client.query<{ horizon: string }>(
    'select pg_snapshot_xmax(pg_current_snapshot())::text as horizon',
  );
  return rows[0]?.horizon ?? '0';
}
