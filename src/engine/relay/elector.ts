import type pg from 'pg';
import { LEADER_LOCK_KEY } from '../db/lock-keys.ts';

/**
 * Leadership of the relay: one process per database holds a session advisory lock on its notifier
 * connection. The lock goes with the connection, so a leader whose connection dies loses it and another
 * process's next attempt takes over.
 *
 * @returns true when this connection leads (now, or already did).
 */
export async function tryLead(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [
    LEADER_LOCK_KEY,
  ]);
  return rows[0]?.locked === true;
}
