import { type QueryExecutorProvider, sql } from 'kysely';
import type { LogPoint } from '../outbox/read.ts';
import { type EventRow, eventColumns } from '../outbox/read.ts';

/** What {@link readStreamBacklog} returns. */
export interface StreamBacklog {
  readonly rows: EventRow[];
  /** A limit (count or bytes) cut the backlog short: more of the stream waits after the last row. */
  readonly limited: boolean;
}

/**
 * A blocked stream's events for a consumer from `fromVersion` up to the checkpoint, in version order: the
 * failed event, then those that waited behind it (they are at or before the checkpoint, so the normal scan
 * will not see them again). Capped like a batch of new events: by count, then by the stored size of
 * payload and metadata (the first event always goes).
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
    /** Cap of the stored payload and metadata bytes read. */
    readonly batchBytes: number;
  },
): Promise<StreamBacklog> {
  const { rows } = await sql<EventRow & { keep: boolean }>`
    select e.*, row_number() over w = 1
                or sum(pg_column_size(e.payload) + pg_column_size(e.metadata)) over w <= ${input.batchBytes}
                as keep
    from (select ${eventColumns} from outbox.events e
          where e.stream_type = ${input.streamType} and e.stream_id = ${input.streamId}
            and e.stream_version >= ${input.fromVersion}
            and (e.log_xid, e.position) <= (${input.checkpoint.logXid}::xid8, ${input.checkpoint.position}::bigint)
            and e.type = any(${[...input.eventTypes]}::text[])
          order by e.stream_version
          limit ${input.limit}) e
    window w as (order by e.stream_version)
    order by e.stream_version`.execute(executor);
  const kept = rows.filter((row) => row.keep).map(({ keep: _keep, ...row }) => row);
  return { rows: kept, limited: rows.length === input.limit || kept.length < rows.length };
}
