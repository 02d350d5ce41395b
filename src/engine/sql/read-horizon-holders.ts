import { type Kysely, sql } from 'kysely';

/**
 * An open transaction that has a transaction id (it wrote, or asked for one): every gap-safe reader of the
 * log — consumers, the relay, subscriptions — waits at the oldest such transaction of the whole cluster
 * (see `READABLE_HORIZON`), whatever database it is in.
 */
export interface HorizonHolder {
  /** Backend pid (`pg_terminate_backend(pid)` ends it); null for a prepared transaction. */
  readonly pid: number | null;
  /** The `gid` of a prepared (two-phase) transaction; null for a session's transaction. */
  readonly preparedGid: string | null;
  /** Its transaction id. */
  readonly xid: string;
  /** Time since the transaction started, ms. */
  readonly ageMs: number;
  /** `active`, `idle in transaction`, … (`prepared` for a prepared transaction). */
  readonly state: string | null;
  readonly applicationName: string | null;
  readonly database: string | null;
  readonly user: string | null;
  /**
   * Its current or last statement. Postgres shows other roles' statements only to superusers and members
   * of `pg_read_all_stats`; null otherwise.
   */
  readonly query: string | null;
  /** True for the transaction the read horizon is at now (the oldest). */
  readonly holdsHorizon: boolean;
}

/**
 * The open transactions with a transaction id, oldest first (at most `limit`, default 5): the first one is
 * what every reader of the log is waiting for when delivery stalls. Sessions of other roles appear only
 * to a role allowed to see them (superuser, `pg_read_all_stats`).
 */
export async function readHorizonHolders<DB>(
  db: Kysely<DB>,
  options: { readonly limit?: number } = {},
): Promise<HorizonHolder[]> {
  const limit = Math.max(1, Math.trunc(options.limit ?? 5));
  const { rows } = await sql<{
    pid: number | null;
    gid: string | null;
    xid: string;
    age_ms: number;
    state: string | null;
    application_name: string | null;
    datname: string | null;
    usename: string | null;
    query: string | null;
    holds: boolean;
  }>`
    with holders as (
      select a.pid, null::text as gid, a.backend_xid as xid, a.xact_start as since, a.state,
             a.application_name, a.datname::text, a.usename::text, a.query
      from pg_stat_activity a
      where a.backend_xid is not null and a.pid <> pg_backend_pid()
      union all
      select null, p.gid, p.transaction, p.prepared, 'prepared', null, p.database::text, p.owner::text, null
      from pg_prepared_xacts p
    ), horizon as (
      select (pg_snapshot_xmin(pg_current_snapshot())::text::numeric % 4294967296)::text as xmin32
    )
    select h.pid, h.gid, h.xid::text as xid,
           greatest(0, extract(epoch from clock_timestamp() - h.since) * 1000)::float8 as age_ms,
           h.state, h.application_name, h.datname, h.usename, h.query,
           h.xid::text = (select xmin32 from horizon) as holds
    from holders h
    order by age(h.xid) desc
    limit ${limit}`.execute(db);
  return rows.map((row) => ({
    pid: row.pid,
    preparedGid: row.gid,
    xid: row.xid,
    ageMs: Math.round(row.age_ms),
    state: row.state,
    applicationName: row.application_name,
    database: row.datname,
    user: row.usename,
    query: row.query,
    holdsHorizon: row.holds,
  }));
}
