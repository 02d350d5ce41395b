import { sql } from 'kysely';
import type { EngineDb } from '../db/database.ts';
import { LogOrderError } from '../errors.ts';

/**
 * Refuses a log whose transaction ids are ahead of the cluster's counter. Log order rides on transaction
 * ids (`log_xid`, checkpoints), which `pg_dump`/restore and logical-replication cut-overs do not carry: in
 * the new cluster, new events would get lower ids than the log's and sort before the checkpoints — delivery
 * would stop, or skip them for good. Cheap: two index look-ups.
 *
 * @throws LogOrderError naming the ids and what to do.
 */
export async function checkLogOrder(db: EngineDb): Promise<void> {
  const { rows } = await sql<{ log_max: string | null; checkpoint_max: string | null; next_xid: string }>`
    select (select log_xid::text from outbox.events order by log_xid desc, position desc limit 1) as log_max,
           (select max(checkpoint_xid)::text from outbox.consumer_partitions) as checkpoint_max,
           pg_snapshot_xmax(pg_current_snapshot())::text as next_xid`.execute(db);
  const row = rows[0];
  if (!row) return;
  const next = BigInt(row.next_xid);
  const ahead = [row.log_max, row.checkpoint_max]
    .filter((value): value is string => value !== null)
    .map(BigInt)
    .reduce((max, value) => (value > max ? value : max), 0n);
  if (ahead < next) return;
  throw new LogOrderError(
    `The event log's transaction ids (up to ${ahead}) are ahead of this database cluster's next transaction id ` +
      `(${next}): the database was restored from a dump or moved by logical replication, which do not carry ` +
      'transaction ids. New events would sort before the log and never be delivered, so Postbox does not start. ' +
      `Advance the cluster's transaction id counter past ${ahead} first: in this database, as a superuser or the ` +
      `owner, run \`do $$ begin for i in 1..${ahead - next + 1n} loop perform pg_current_xact_id(); commit; end loop; end $$\`` +
      ' (one transaction id per iteration), or, self-hosted with the server stopped, ' +
      `pg_resetwal -x ${ahead + 1n} on its data directory.`,
    ahead.toString(),
    next.toString(),
  );
}
