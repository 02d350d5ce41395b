import { type QueryExecutorProvider, sql } from 'kysely';
import { type EventRow, eventColumns } from '../outbox/read.ts';

/** A dead letter whose redrive an operator requested, with its event. */
export interface RedriveRow extends EventRow {
  dead_letter_id: string;
  dead_attempts: number;
}

/**
 * Dead letters of a partition whose redrive was requested, in stream order. Streams parked by `block` are
 * left out: they are released through the retry path instead.
 */
export async function readRedrives(
  executor: QueryExecutorProvider,
  consumer: string,
  partition: number,
  limit: number,
  /** Only events of these types (the running code's; others are left for code that handles them). */
  eventTypes: readonly string[],
): Promise<RedriveRow[]> {
  const { rows } = await sql<RedriveRow>`
    select ${eventColumns}, d.id::text as dead_letter_id, d.attempts as dead_attempts
    from outbox.dead_letters d join outbox.events e on e.position = d.event_position
    where d.consumer = ${consumer} and d.partition = ${partition}
      and d.redrive_requested_at is not null and d.redriven_at is null
      and e.type = any(${[...eventTypes]}::text[])
      and not exists (select 1 from outbox.blocked_streams b
                      where b.consumer = d.consumer and b.event_position = d.event_position)
    order by e.stream_type, e.stream_id, e.stream_version
    limit ${limit}`.execute(executor);
  return rows;
}
