import type pg from 'pg';
import { READABLE_HORIZON } from '../outbox/horizon.ts';
import type { LogPoint } from '../outbox/read.ts';
import type { DrainTarget } from '../relay/schedule.ts';

/** Events one scan reads at most. */
export const SCAN_LIMIT = 5000;

/** What one scan found. */
export interface ScanResult {
  /** Newly readable events after the cursor (at most {@link SCAN_LIMIT}). */
  readonly count: number;
  /** The last of them: the relay's next cursor. */
  readonly last: LogPoint | undefined;
  /** Consumer partitions concerned by them. */
  readonly targets: DrainTarget[];
  /** Whether this scan flipped the relay's `sleeping` flag back (writers stop sending NOTIFYs). */
  readonly woke: boolean;
  /** Nothing readable, but events past the cursor exist: they wait behind an older running transaction. */
  readonly unreadable: boolean;
  /** The readable horizon this scan saw. */
  readonly xmin: string;
}

/**
 * ONE statement: reads the next batch of readable events after the cursor (gap-safe), computes the
 * (consumer, partition) pairs concerned among every active consumer, and — when `markAwake` and the batch
 * is not empty — clears the relay's `sleeping` flag.
 */
export async function scanLog(
  client: pg.ClientBase,
  cursor: LogPoint,
  markAwake: boolean,
): Promise<ScanResult> {
  const { rows } = await client.query<{
    count: number;
    last_xid: string | null;
    last_position: string | null;
    targets: DrainTarget[] | null;
    woke: number;
    unreadable: boolean;
    xmin: string;
  }>({
    // Prepared on the relay's connection: planning this statement cost about as much as running it, and
    // it runs on every wake-up (its plan does not depend on the cursor: one range walk of the log's
    // order index).
    name: 'postbox_scan_log',
    text: `with batch as (
       select e.log_xid, e.position, e.type, e.stream_type, e.stream_id
       from outbox.events e
       where (e.log_xid, e.position) > ($1::xid8, $2::bigint)
         and e.log_xid < ${READABLE_HORIZON}
       order by e.log_xid, e.position
       limit ${SCAN_LIMIT}
     ), last as (
       select log_xid, position from batch order by log_xid desc, position desc limit 1
     ), targets as (
       select distinct c.name as consumer, outbox.partition_of(b.stream_id, c.partitions) as partition,
              c.kind = 'destination' as destination
       from batch b
       join outbox.consumers c on b.type = any (c.event_types)
         and (c.stream_types is null or b.stream_type = any (c.stream_types))
       where c.status = 'active'
     ), awake as (
       select setval('outbox.relay_sleeping', 0)
       where $3::boolean and exists (select 1 from batch)
     )
     select (select count(*) from batch)::int as count,
            (select log_xid::text from last) as last_xid,
            (select position::text from last) as last_position,
            (select json_agg(json_build_object('consumer', consumer, 'partition', partition, 'destination', destination)) from targets)
              as targets,
            (select count(*) from awake)::int as woke,
            not exists (select 1 from batch)
              and exists (select 1 from outbox.events e
                          where (e.log_xid, e.position) > ($1::xid8, $2::bigint)) as unreadable,
            ${READABLE_HORIZON}::text as xmin`,
    values: [cursor.logXid, cursor.position, markAwake],
  });
  const row = rows[0];
  return {
    count: row?.count ?? 0,
    last:
      row?.last_xid && row.last_position ? { logXid: row.last_xid, position: row.last_position } : undefined,
    targets: row?.targets ?? [],
    woke: (row?.woke ?? 0) > 0,
    unreadable: row?.unreadable ?? false,
    xmin: row?.xmin ?? '0',
  };
}

/** The last readable point of the log (a new leader's starting cursor), or the start of the log. */
export async function readLogHeadOn(client: pg.ClientBase): Promise<LogPoint> {
  const { rows } = await client.query<{ log_xid: string; position: string }>(
    `select log_xid::text, position::text from outbox.events
     where log_xid < ${READABLE_HORIZON}
     order by log_xid desc, position desc limit 1`,
  );
  const row = rows[0];
  return row ? { logXid: row.log_xid, position: row.position } : { logXid: '0', position: '0' };
}
