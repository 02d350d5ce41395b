import type pg from 'pg';

/**
 * Marks the relay asleep: from now on, appending transactions send a wake-up NOTIFY. The flag is a sequence
 * (migration 000007): `setval` takes effect at once and every writer reads it as it is now, whatever its
 * snapshot.
 */
export async function markRelayAsleep(client: pg.ClientBase): Promise<void> {
  await client.query(`select setval('outbox.relay_sleeping', 1)`);
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
