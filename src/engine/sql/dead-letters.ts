import { type QueryExecutorProvider, sql } from 'kysely';
import type { EventRow } from '../outbox/read.ts';

/** Records (or refreshes) the open dead letter of an event for a consumer. */
export async function recordDeadLetter(
  executor: QueryExecutorProvider,
  input: {
    readonly consumer: string;
    readonly partition: number;
    readonly event: EventRow;
    readonly attempts: number;
    readonly error: string;
    readonly stack: string | null;
    /** When the first attempt failed; default now. */
    readonly firstFailedAt: string | undefined;
  },
): Promise<void> {
  const { event } = input;
  await sql`insert into outbox.dead_letters
              (consumer, partition, event_position, event_id, stream_type, stream_id, stream_version, event_type,
               attempts, last_error, error_stack, first_failed_at)
            values (${input.consumer}, ${input.partition}, ${event.position}, ${event.id}, ${event.stream_type},
                    ${event.stream_id}, ${event.stream_version}, ${event.type}, ${input.attempts}, ${input.error},
                    ${input.stack}, coalesce(${input.firstFailedAt ?? null}::timestamptz, now()))
            on conflict (consumer, event_position) where redriven_at is null
            do update set attempts = excluded.attempts, last_error = excluded.last_error,
                          error_stack = excluded.error_stack, dead_at = now(), redrive_requested_at = null`.execute(
    executor,
  );
}

/** A redriven dead letter failed again: count the attempt, keep it open, clear the request. */
export async function failRedrive(
  executor: QueryExecutorProvider,
  deadLetterId: string,
  error: string,
  stack: string | null,
): Promise<void> {
  await sql`update outbox.dead_letters
            set attempts = attempts + 1, last_error = ${error}, error_stack = ${stack},
                redrive_requested_at = null, dead_at = now()
            where id = ${deadLetterId}`.execute(executor);
}

/** A redriven dead letter was delivered: it stays as history, closed. */
export async function closeDeadLetter(executor: QueryExecutorProvider, deadLetterId: string): Promise<void> {
  await sql`update outbox.dead_letters set redriven_at = now() where id = ${deadLetterId}`.execute(executor);
}

/** Closes the open dead letter of an event (a stream parked by `block` was released and delivered it). */
export async function closeDeadLetterOfEvent(
  executor: QueryExecutorProvider,
  consumer: string,
  eventPosition: string,
): Promise<void> {
  await sql`update outbox.dead_letters set redriven_at = now()
            where consumer = ${consumer} and event_position = ${eventPosition} and redriven_at is null`.execute(
    executor,
  );
}
