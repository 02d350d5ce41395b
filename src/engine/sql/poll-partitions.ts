import type pg from 'pg';
import { READABLE_HORIZON } from '../outbox/horizon.ts';
import type { DrainTarget } from '../relay/schedule.ts';

/**
 * The relay's safety net: every partition of every active consumer that has readable events past its
 * checkpoint, a retry due or a redrive requested.
 */
export async function pollPartitions(client: pg.ClientBase): Promise<DrainTarget[]> {
  const { rows } = await client.query<DrainTarget>(
    `select c.name as consumer, p.partition, c.kind = 'destination' as destination
     from outbox.consumers c
     join outbox.consumer_partitions p on p.consumer = c.name
     where c.status = 'active'
       -- The ordered subquery walks the log-order index forward from the checkpoint and stops at the first
       -- match; with the filters inline the planner chose a sequential scan of the whole log.
       and (exists (select 1
                    from (select e.type, e.stream_type, e.stream_id from outbox.events e
                          where (e.log_xid, e.position) > (p.checkpoint_xid, p.checkpoint_position)
                            and e.log_xid < ${READABLE_HORIZON}
                          order by e.log_xid, e.position) e
                    where e.type = any (c.event_types)
                      and (c.stream_types is null or e.stream_type = any (c.stream_types))
                      and outbox.partition_of(e.stream_id, c.partitions) = p.partition)
            or exists (select 1 from outbox.blocked_streams b
                       where b.consumer = c.name and b.partition = p.partition and b.next_attempt_at <= now())
            or exists (select 1 from outbox.dead_letters d
                       where d.consumer = c.name and d.partition = p.partition
                         and d.redrive_requested_at is not null and d.redriven_at is null))`,
  );
  return rows;
}
