import type pg from 'pg';

/** What {@link rebaseLog} found and did. */
export interface LogRebase {
  /** Whether anything was rewritten (false: the log was not ahead of the cluster's counter). */
  readonly rebased: boolean;
  /** The highest transaction id stored in the log or a checkpoint, before. */
  readonly aheadXid: string;
  /** The cluster's next transaction id, before. */
  readonly nextXid: string;
  /** Events given a new `log_xid`. */
  readonly events: number;
  /** Checkpoints rewritten (the `0` ones, before every event, stay). */
  readonly checkpoints: number;
  /** Distinct log_xid values the log has now (one per stretch of the log between two checkpoints). */
  readonly segments: number;
  /** Transaction ids consumed first so that the new values fit below the counter (usually 0). */
  readonly consumedXids: number;
}

/** First normal transaction id: 0–2 are reserved, and a checkpoint of 0 means "before every event". */
const BASE_XID = 3n;

/**
 * Re-bases the log's transaction ids after a `pg_dump`/restore or a logical-replication cut-over, so that
 * delivery resumes with nothing skipped and nothing delivered twice. Run it with every Postbox process
 * stopped; it takes the log's tables exclusively (waiting at most `lockTimeoutMs`) and rewrites them in
 * ONE transaction, all or nothing.
 *
 * Log order is (log_xid, position), and log_xid comes from the old cluster's transaction ids, which can be
 * ahead of the new cluster's counter: new events would sort before the log. What order must keep:
 * - every consumer's checkpoint must still split the log into the same settled / unsettled events;
 * - every stream's events must stay in version order.
 * The checkpoints cut the log (in its old order) into stretches. Each stretch gets one new log_xid (3, 4,
 * 5…, in order), and each checkpoint becomes (its stretch's log_xid, the largest position in it). Within a
 * stretch events now sort by position, which is version order within a stream (a stream's appends are
 * serialized by its row lock and positions are assigned at insert). The stretches are few (at most one
 * more than the distinct checkpoints), so the new ids fit below any counter; if they do not, this first
 * consumes that many transaction ids. `outbox.streams.log_xid` follows its stream's last event;
 * `transaction_id` keeps the old cluster's id (history only).
 *
 * Position-keyed state — blocked streams, dead letters, redrives — is untouched.
 */
export async function rebaseLog(
  client: pg.ClientBase,
  options: { readonly lockTimeoutMs?: number } = {},
): Promise<LogRebase> {
  const ahead = await readAhead(client);
  const unchanged: LogRebase = {
    rebased: false,
    aheadXid: ahead.ahead.toString(),
    nextXid: ahead.next.toString(),
    events: 0,
    checkpoints: 0,
    segments: 0,
    consumedXids: 0,
  };
  if (ahead.ahead < ahead.next) return unchanged;

  const { rows: cutRows } = await client.query<{ cuts: number }>(
    `select count(distinct (checkpoint_xid, checkpoint_position))::int as cuts from outbox.consumer_partitions
     where (checkpoint_xid, checkpoint_position) > ('0'::xid8, 0)`,
  );
  // New ids 3 … 3 + cuts must all be below the counter when the rewrite commits (and below any later
  // transaction's id): consume ids in committed transactions of their own first if the cluster is younger.
  const highest = BASE_XID + BigInt(cutRows[0]?.cuts ?? 0);
  let consumed = 0;
  if (highest + 1n >= ahead.next) {
    consumed = Number(highest + 2n - ahead.next);
    await client.query(
      `do $$ begin for i in 1..${consumed} loop perform pg_current_xact_id(); commit; end loop; end $$`,
    );
  }

  await client.query('begin');
  try {
    await client.query(`select set_config('lock_timeout', $1, true)`, [
      `${Math.trunc(options.lockTimeoutMs ?? 5000)}ms`,
    ]);
    await client.query(
      'lock table outbox.events, outbox.streams, outbox.consumer_partitions in access exclusive mode',
    );
    // Checked again under the locks: nothing may have moved since.
    const locked = await readAhead(client);
    if (locked.ahead < locked.next) {
      await client.query('rollback');
      return { ...unchanged, aheadXid: locked.ahead.toString(), nextXid: locked.next.toString() };
    }
    // Every event and every distinct checkpoint, in the old log order; a checkpoint sorts after the event
    // it names (that event is settled). An event's stretch is the number of checkpoints before it.
    await client.query(
      `create temporary table rebase_points on commit drop as
       select x, p, is_cut,
              (count(*) filter (where is_cut) over (order by x, p, is_cut rows unbounded preceding))::bigint
                - is_cut::int as segment
       from (select log_xid as x, position as p, false as is_cut from outbox.events
             union all
             select distinct checkpoint_xid, checkpoint_position, true from outbox.consumer_partitions
             where (checkpoint_xid, checkpoint_position) > ('0'::xid8, 0)) points`,
    );
    await client.query(
      `alter table outbox.events disable trigger events_append_only;
       create index on rebase_points (p) where not is_cut`,
    );
    const events = await client.query(
      `update outbox.events e set log_xid = (${BASE_XID} + r.segment)::text::xid8
       from rebase_points r where not r.is_cut and r.p = e.position`,
    );
    await client.query('alter table outbox.events enable trigger events_append_only');
    const checkpoints = await client.query(
      `update outbox.consumer_partitions cp
       set checkpoint_xid = (${BASE_XID} + r.segment)::text::xid8,
           checkpoint_position = coalesce((select max(e.p) from rebase_points e
                                           where not e.is_cut and e.segment = r.segment), 0)
       from rebase_points r
       where r.is_cut and (cp.checkpoint_xid, cp.checkpoint_position) = (r.x, r.p)`,
    );
    await client.query(
      `update outbox.streams s set log_xid = e.log_xid
       from outbox.events e
       where e.stream_type = s.stream_type and e.stream_id = s.stream_id and e.stream_version = s.version`,
    );
    const { rows: segments } = await client.query<{ n: number }>(
      'select count(distinct segment)::int as n from rebase_points where not is_cut',
    );
    await client.query('commit');
    return {
      rebased: true,
      aheadXid: ahead.ahead.toString(),
      nextXid: ahead.next.toString(),
      events: events.rowCount ?? 0,
      checkpoints: checkpoints.rowCount ?? 0,
      segments: segments[0]?.n ?? 0,
      consumedXids: consumed,
    };
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  }
}

/** The highest transaction id stored in the log, a stream head or a checkpoint, and the cluster's next one. */
async function readAhead(client: pg.ClientBase): Promise<{ ahead: bigint; next: bigint }> {
  const { rows } = await client.query<{
    log_max: string | null;
    checkpoint_max: string | null;
    streams_max: string | null;
    next: string;
  }>(
    `select (select log_xid::text from outbox.events order by log_xid desc, position desc limit 1) as log_max,
            (select max(checkpoint_xid)::text from outbox.consumer_partitions) as checkpoint_max,
            (select max(log_xid)::text from outbox.streams) as streams_max,
            pg_snapshot_xmax(pg_current_snapshot())::text as next`,
  );
  const row = rows[0];
  const values = [row?.log_max, row?.checkpoint_max, row?.streams_max].filter(
    (v): v is string => typeof v === 'string',
  );
  const ahead = values.map(BigInt).reduce((max, v) => (v > max ? v : max), 0n);
  return { ahead, next: BigInt(row?.next ?? '0') };
}
