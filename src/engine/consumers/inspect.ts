import type { Kysely } from 'kysely';
import { engineView } from '../db/database.ts';
import { NotFoundError, ValidationError } from '../errors.ts';
import type { RecordedEvent } from '../outbox/event.ts';
import { toRecordedEvent } from '../outbox/read.ts';
import { selectDeadLetterPage, selectPartitionStates, selectStuckStreams } from '../sql/inspect-consumers.ts';

// What an operator (CLI, GraphQL API, console) looks at when a consumer is behind or stuck: its partitions,
// the streams waiting on a failed event, and its dead letters with their events. Read-only.

/** One partition of a consumer. Positions and counts that can exceed 2^53 are decimal strings. */
export interface PartitionState {
  readonly partition: number;
  /** Position of the last settled event (`0` before the first). */
  readonly checkpointPosition: string;
  /** Position of the newest event this partition receives. */
  readonly headPosition: string;
  /** Events not yet delivered. */
  readonly lag: number;
  readonly oldestPendingAt: Date | null;
  /** Streams waiting for a retry. */
  readonly retrying: number;
  /** Streams parked until an operator acts (`onExhausted: 'block'`). */
  readonly blocked: number;
  readonly deadLetters: number;
  readonly handled: number;
  readonly updatedAt: Date;
}

/** Every partition of a consumer, in partition order; `NotFoundError` for an unknown consumer. */
export async function listPartitions<DB>(db: Kysely<DB>, consumer: string): Promise<PartitionState[]> {
  const rows = await selectPartitionStates(engineView(db), consumer);
  if (rows.length === 0) throw new NotFoundError(`No consumer named ${consumer}`);
  return rows.map((row) => ({
    partition: row.partition,
    checkpointPosition: row.checkpoint,
    headPosition: row.head,
    lag: Number(row.lag),
    oldestPendingAt: row.oldest_pending_at,
    retrying: Number(row.retrying),
    blocked: Number(row.blocked),
    deadLetters: Number(row.dead_letters),
    handled: Number(row.handled),
    updatedAt: row.updated_at,
  }));
}

/** A stream waiting on a failed event for one consumer. */
export interface StuckStream {
  readonly streamType: string;
  readonly streamId: string;
  readonly partition: number;
  /** The failing event: the stream's next one. */
  readonly eventPosition: string;
  readonly streamVersion: number;
  readonly attempts: number;
  /** When it is tried again; `null` = parked until an operator redrives it. */
  readonly nextAttemptAt: Date | null;
  readonly lastError: string;
  readonly firstFailedAt: Date;
  readonly lastFailedAt: Date;
}

/** Default and largest number of stuck streams {@link listStuckStreams} returns. */
export const STUCK_STREAMS_LIMIT = 500;

/** The streams of a consumer waiting on a failed event, the longest-failing first (at most `limit`, ≤ 500). */
export async function listStuckStreams<DB>(
  db: Kysely<DB>,
  consumer: string,
  limit = STUCK_STREAMS_LIMIT,
): Promise<StuckStream[]> {
  if (!Number.isInteger(limit) || limit < 0 || limit > STUCK_STREAMS_LIMIT)
    throw new ValidationError(`limit must be an integer 0..${STUCK_STREAMS_LIMIT}`, 'limit');
  const rows = await selectStuckStreams(engineView(db), consumer, limit);
  return rows.map((row) => ({
    streamType: row.stream_type,
    streamId: row.stream_id,
    partition: row.partition,
    eventPosition: row.event_position,
    streamVersion: row.stream_version,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    lastError: row.last_error,
    firstFailedAt: row.first_failed_at,
    lastFailedAt: row.last_failed_at,
  }));
}

/** An open dead letter and its event as stored (not upcast: the event may be the reason it failed). */
export interface DeadLetterDetail {
  readonly id: string;
  readonly consumer: string;
  readonly partition: number;
  readonly attempts: number;
  readonly error: string;
  readonly stack: string | null;
  readonly firstFailedAt: Date;
  readonly deadAt: Date;
  /** Set while a redrive is queued. */
  readonly redriveRequestedAt: Date | null;
  readonly event: RecordedEvent;
}

/** Filters and page of {@link searchDeadLetters}; every given condition must hold. */
export interface DeadLetterSearch {
  readonly consumer?: string;
  readonly eventType?: string;
  /** Text the last error contains, case-insensitive (literal: `%` and `_` are not wildcards). */
  readonly errorContains?: string;
  /** Continue after this dead letter id (from the previous page's last letter). */
  readonly afterId?: string;
  /** Page size, 1..500. Default 50. */
  readonly first?: number;
}

/**
 * Open dead letters, oldest first, a page at a time (keyset on the id, so deep pages cost what the first
 * does). `hasMore` says whether another page follows.
 */
export async function searchDeadLetters<DB>(
  db: Kysely<DB>,
  search: DeadLetterSearch = {},
): Promise<{ letters: DeadLetterDetail[]; hasMore: boolean }> {
  const first = search.first ?? 50;
  if (!Number.isInteger(first) || first < 1 || first > 500)
    throw new ValidationError('first must be an integer 1..500', 'first');
  if (search.afterId !== undefined && !/^\d{1,18}$/.test(search.afterId))
    throw new ValidationError('afterId must be a dead letter id', 'afterId');
  if (search.errorContains !== undefined && search.errorContains.length > 200)
    throw new ValidationError('errorContains is longer than 200 characters', 'errorContains');
  const rows = await selectDeadLetterPage(engineView(db), {
    consumer: search.consumer,
    eventType: search.eventType,
    errorContains: search.errorContains,
    afterId: search.afterId,
    limit: first + 1,
  });
  return {
    hasMore: rows.length > first,
    letters: rows.slice(0, first).map((row) => ({
      id: row.dl_id,
      consumer: row.dl_consumer,
      partition: row.dl_partition,
      attempts: row.dl_attempts,
      error: row.dl_last_error,
      stack: row.dl_error_stack,
      firstFailedAt: row.dl_first_failed_at,
      deadAt: row.dl_dead_at,
      redriveRequestedAt: row.dl_redrive_requested_at,
      event: toRecordedEvent(row),
    })),
  };
}
