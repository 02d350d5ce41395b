import { type QueryExecutorProvider, sql } from 'kysely';
import type { LogPoint } from '../outbox/read.ts';

/** Moves a consumer partition's checkpoint and adds to its handled count, in the delivery transaction. */
export async function saveCheckpoint(
  executor: QueryExecutorProvider,
  input: {
    readonly consumer: string;
    readonly partition: number;
    readonly checkpoint: LogPoint;
    readonly handled: number;
  },
): Promise<void> {
  await sql`update outbox.consumer_partitions
            set checkpoint_xid = ${input.checkpoint.logXid}::xid8, checkpoint_position = ${input.checkpoint.position},
                handled = handled + ${input.handled}, updated_at = now()
            where consumer = ${input.consumer} and partition = ${input.partition}`.execute(executor);
}
