import type pg from 'pg';
import { READABLE_HORIZON } from '../outbox/horizon.ts';

/** A consumer partition whose checkpoint {@link fastForwardPartitions} moved. */
export interface FastForwarded {
  readonly consumer: string;
  readonly partition: number;
}

/**
 * Moves idle checkpoints forward over events their consumer does not want: for each consumer partition
 * behind the readable head of the log, to the head when none of the consumer's events lie in between, or
 * else to the event just before the first of them. A partition that never receives an event would
 * otherwise keep a checkpoint from long ago, and every reader that starts there (a first event after
 * millions of others, the lag view) would pay for the log in between.
 *
 * Why this is safe:
 * - Gap safety: the head is the last event below the readable horizon ({@link READABLE_HORIZON}), so every
 *   event up to it is committed for good; no transaction still running can add one below it.
 * - Nothing is passed that the consumer wants: the checkpoint stops before the first event of any of its
 *   live definitions' types (blocked streams' later events included: they stay after the checkpoint, where
 *   the drain finds them), so per-stream order, retries, redrives and hand-over are untouched.
 * - A drain, a replay or a reset that moved the checkpoint meanwhile wins: the update applies only while the
 *   checkpoint is still the one this statement examined from (a row updated concurrently is re-checked).
 *
 * Cost: per consumer partition behind the head, one look-up per event type in
 * `events_type_log_order_idx` and one step back in the log-order index. It writes (and takes a
 * transaction id) only when a checkpoint moves.
 */
export async function fastForwardPartitions(client: pg.ClientBase): Promise<FastForwarded[]> {
  const { rows } = await client.query<FastForwarded>(
    `with head as materialized (
       select h.log_xid, h.position from outbox.events h
       where h.log_xid < ${READABLE_HORIZON}
       order by h.log_xid desc, h.position desc limit 1
     ), moves as (
       select p.consumer, p.partition, p.checkpoint_xid as from_xid, p.checkpoint_position as from_position,
              case when first.log_xid is null then h.log_xid else before.log_xid end as to_xid,
              case when first.log_xid is null then h.position else before.position end as to_position
       from outbox.consumers c
       join outbox.consumer_partitions p on p.consumer = c.name
       cross join head h
       left join lateral (
         select e.log_xid, e.position
         from unnest(c.event_types) as t(type)
         cross join lateral (
           select e.log_xid, e.position from outbox.events e
           -- A range, not =, and the type leading the comparisons and the order: only
           -- events_type_log_order_idx fits (see migration 000012).
           where e.type >= t.type and e.type <= t.type
             and (e.type, e.log_xid, e.position) > (t.type, p.checkpoint_xid, p.checkpoint_position)
             and (e.type, e.log_xid, e.position) <= (t.type, h.log_xid, h.position)
             and (c.stream_types is null or e.stream_type = any (c.stream_types))
             and outbox.partition_of(e.stream_id, c.partitions) = p.partition
           order by e.type, e.log_xid, e.position
           limit 1) e
         order by e.log_xid, e.position
         limit 1
       ) first on true
       left join lateral (
         select b.log_xid, b.position from outbox.events b
         where first.log_xid is not null
           and (b.log_xid, b.position) < (first.log_xid, first.position)
         order by b.log_xid desc, b.position desc
         limit 1
       ) before on true
       where (p.checkpoint_xid, p.checkpoint_position) < (h.log_xid, h.position)
     )
     update outbox.consumer_partitions p
     set checkpoint_xid = m.to_xid, checkpoint_position = m.to_position
     from moves m
     where p.consumer = m.consumer and p.partition = m.partition
       and p.checkpoint_xid = m.from_xid and p.checkpoint_position = m.from_position
       and (m.to_xid, m.to_position) > (m.from_xid, m.from_position)
     returning p.consumer, p.partition`,
  );
  return rows;
}
