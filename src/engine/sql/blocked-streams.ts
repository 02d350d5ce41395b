import { type QueryExecutorProvider, sql } from 'kysely';
import type { EventRow } from '../outbox/read.ts';

/**
 * Holds a stream for a consumer at a failed event: retried `retryDelayMs` from now on the database's clock,
 * or parked when null. Returns the retry time as stored.
 */
export async function blockStream(
  executor: QueryExecutorProvider,
  input: {
    readonly consumer: string;
    readonly partition: number;
    readonly event: EventRow;
    readonly attempts: number;
    readonly retryDelayMs: number | null;
    readonly error: string;
    readonly firstFailedAt: string | undefined;
  },
): Promise<Date | null> {
  const { event } = input;
  const { rows } = await sql<{ next_attempt_at: Date | null }>`insert into outbox.blocked_streams as b
              (consumer, stream_type, stream_id, partition, event_position, stream_version, attempts,
               next_attempt_at, last_error, first_failed_at)
            values (${input.consumer}, ${event.stream_type}, ${event.stream_id}, ${input.partition}, ${event.position},
                    ${event.stream_version}, ${input.attempts},
                    clock_timestamp() + make_interval(secs => ${input.retryDelayMs}::float8 / 1000), ${input.error},
                    coalesce(${input.firstFailedAt ?? null}::timestamptz, now()))
            on conflict (consumer, stream_type, stream_id) do update
              set event_position = excluded.event_position, stream_version = excluded.stream_version,
                  attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at,
                  last_error = excluded.last_error, last_failed_at = now(),
                  first_failed_at = excluded.first_failed_at
            returning b.next_attempt_at`.execute(executor);
  return rows[0]?.next_attempt_at ?? null;
}

/**
 * A blocked stream's backlog was only partly caught up: keep it blocked, due now, from the version after
 * `lastVersion` (its next event of the consumer's types, found by stream and version).
 */
export async function advanceBlockedStream(
  executor: QueryExecutorProvider,
  input: {
    readonly consumer: string;
    readonly streamType: string;
    readonly streamId: string;
    readonly lastVersion: number;
    readonly eventTypes: readonly string[];
  },
): Promise<void> {
  await sql`update outbox.blocked_streams
            set stream_version = ${input.lastVersion + 1}, attempts = 0, next_attempt_at = now(),
                event_position = coalesce((select e.position from outbox.events e
                  where e.stream_type = ${input.streamType} and e.stream_id = ${input.streamId}
                    and e.stream_version > ${input.lastVersion}
                    and e.type = any(${[...input.eventTypes]}::text[])
                  order by e.stream_version limit 1), event_position)
            where consumer = ${input.consumer} and stream_type = ${input.streamType}
              and stream_id = ${input.streamId}`.execute(executor);
}

/** The stream caught up: it flows with the normal scan again. */
export async function releaseStream(
  executor: QueryExecutorProvider,
  consumer: string,
  streamType: string,
  streamId: string,
): Promise<void> {
  await sql`delete from outbox.blocked_streams
            where consumer = ${consumer} and stream_type = ${streamType} and stream_id = ${streamId}`.execute(
    executor,
  );
}
