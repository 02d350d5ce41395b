import { type QueryExecutorProvider, sql } from 'kysely';
import { type EventRow, eventColumns } from '../outbox/read.ts';

/** One partition of a consumer, as `outbox.consumer_lag` reports it. */
export interface PartitionStateRow {
  partition: number;
  checkpoint: string;
  head: string;
  lag: string;
  oldest_pending_at: Date | null;
  retrying: string;
  blocked: string;
  dead_letters: string;
  handled: string;
  updated_at: Date;
}

/** Every partition of one consumer, in partition order. */
export async function selectPartitionStates(
  executor: QueryExecutorProvider,
  consumer: string,
): Promise<PartitionStateRow[]> {
  const { rows } = await sql<PartitionStateRow>`
    select partition, checkpoint::text, head::text, lag::text, oldest_pending_at, retrying::text,
           blocked::text, dead_letters::text, handled::text, updated_at
    from outbox.consumer_lag where consumer = ${consumer} order by partition`.execute(executor);
  return rows;
}

/** A stream waiting on a failed event for one consumer (retrying, or parked until an operator acts). */
export interface StuckStreamRow {
  stream_type: string;
  stream_id: string;
  partition: number;
  event_position: string;
  stream_version: number;
  attempts: number;
  next_attempt_at: Date | null;
  last_error: string;
  first_failed_at: Date;
  last_failed_at: Date;
}

/** The streams of one consumer waiting on a failed event, the longest-failing first. */
export async function selectStuckStreams(
  executor: QueryExecutorProvider,
  consumer: string,
  limit: number,
): Promise<StuckStreamRow[]> {
  const { rows } = await sql<StuckStreamRow>`
    select stream_type, stream_id, partition, event_position::text, stream_version, attempts, next_attempt_at,
           last_error, first_failed_at, last_failed_at
    from outbox.blocked_streams where consumer = ${consumer}
    order by first_failed_at, stream_type, stream_id
    limit ${limit}`.execute(executor);
  return rows;
}

/** An open dead letter with the event it holds (stored row, not upcast). */
export interface DeadLetterSearchRow {
  dl_id: string;
  dl_consumer: string;
  dl_partition: number;
  dl_attempts: number;
  dl_last_error: string;
  dl_error_stack: string | null;
  dl_first_failed_at: Date;
  dl_dead_at: Date;
  dl_redrive_requested_at: Date | null;
}

/**
 * Open dead letters after `afterId` (keyset on the id, oldest first), optionally of one consumer, one event
 * type, or whose error contains a text (case-insensitive, taken literally: no LIKE wildcards).
 */
export async function selectDeadLetterPage(
  executor: QueryExecutorProvider,
  filter: {
    readonly consumer: string | undefined;
    readonly eventType: string | undefined;
    readonly errorContains: string | undefined;
    readonly afterId: string | undefined;
    readonly limit: number;
  },
): Promise<Array<DeadLetterSearchRow & EventRow>> {
  const { rows } = await sql<DeadLetterSearchRow & EventRow>`
    select d.id::text as dl_id, d.consumer as dl_consumer, d.partition as dl_partition, d.attempts as dl_attempts,
           d.last_error as dl_last_error, d.error_stack as dl_error_stack, d.first_failed_at as dl_first_failed_at,
           d.dead_at as dl_dead_at, d.redrive_requested_at as dl_redrive_requested_at, ${eventColumns}
    from outbox.dead_letters d
    join outbox.events e on e.position = d.event_position
    where d.redriven_at is null
      and (${filter.consumer ?? null}::text is null or d.consumer = ${filter.consumer ?? null})
      and (${filter.eventType ?? null}::text is null or d.event_type = ${filter.eventType ?? null})
      and (${filter.errorContains ?? null}::text is null
           or strpos(lower(d.last_error), lower(${filter.errorContains ?? null})) > 0)
      and d.id > ${filter.afterId ?? '0'}::bigint
    order by d.id
    limit ${filter.limit}`.execute(executor);
  return rows;
}
