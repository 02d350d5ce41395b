import type pg from 'pg';
import { READABLE_HORIZON } from '../outbox/horizon.ts';
import type { DrainTarget } from '../relay/schedule.ts';

/**
 * The relay's safety net: every partition of every active consumer that has readable events past its
 * checkpoint, a retry due or a redrive requested.
 *
 * Cost: for each of a consumer's event types, one look-up in `events_type_log_order_idx` from the
 * checkpoint to the first event of the partition — the consumer's own events, never the rest of the log.
 */
export async function pollPartitions(client: pg.ClientBase): Promise<DrainTarget[]> {
  const { rows } = await client.query<DrainTarget>(
    `select c.name as consumer, p.partition, c.kind = 'destination' as destination
     from outbox.consumers c
     join outbox.consumer_partitions p on p.consumer = c.name
     where c.status = 'active'
       and (exists (select 1
                    from unnest(c.event_types) as t(type)
                    cross join lateral (
                      select 1 from outbox.events e
                      -- A range, not =, and the type leading the comparison: only
                      -- events_type_log_order_idx fits (see migration 000012).
                      where e.type >= t.type and e.type <= t.type
                        and (e.type, e.log_xid, e.position) > (t.type, p.checkpoint_xid, p.checkpoint_position)
                        and e.log_xid < ${READABLE_HORIZON}
                        and (c.stream_types is null or e.stream_type = any (c.stream_types))
                        and outbox.partition_of(e.stream_id, c.partitions) = p.partition
                      limit 1) e)
            or exists (select 1 from outbox.blocked_streams b
                       where b.consumer = c.name and b.partition = p.partition and b.next_attempt_at <= now())
            or exists (select 1 from outbox.dead_letters d
                       where d.consumer = c.name and d.partition = p.partition
                         and d.redrive_requested_at is not null and d.redriven_at is null))`,
  );
  return rows;
}
