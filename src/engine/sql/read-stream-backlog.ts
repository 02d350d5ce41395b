import { type QueryExecutorProvider, sql } from 'kysely';
import type { LogPoint } from '../outbox/read.ts';
import { type EventRow, eventColumns } from '../outbox/read.ts';

/**
 * A blocked stream's events for a consumer from `fromVersion` up to the checkpoint, in version order: the
 * failed event, then those that waited behind it (they are at or before the checkpoint, so the normal scan
 * will not see them again).
 */
export async function readStreamBacklog(
  executor: QueryExecutorProvider,
  input: {
    readonly streamType: string;
    readonly streamId: string;
    readonly fromVersion: number;
    readonly checkpoint: LogPoint;
    readonly eventTypes: readonly string[];
    readonly limit: number;
  },
): Promise<EventRow[]> {
  const { rows } = await sql<EventRow>`
    select ${eventColumns} from outbox.events e
    where e.stream_type = ${input.streamType} and e.stream_id = ${input.streamId}
      and e.stream_version >= ${input.fromVersion}
      and (e.log_xid, e.position) <= (${input.checkpoint.logXid}::xid8, ${input.checkpoint.position}::bigint)
      and e.type = any(${[...input.eventTypes]}::text[])
    order by e.stream_version
    limit ${input.limit}`.execute(executor);
  return rows;
}
