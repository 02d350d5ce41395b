import { type QueryExecutorProvider, sql } from 'kysely';
import { checkedConsumerName } from '../db/lock-keys.ts';
import type { LogPoint } from '../outbox/read.ts';

/** Parameters of {@link saveCheckpoint}. */
export interface SaveCheckpointInput {
  readonly consumer: string;
  readonly partition: number;
  readonly checkpoint: LogPoint;
  readonly handled: number;
  /**
   * Set `statement_timeout` to this first (ms), in the same round trip: after the handlers, whose own
   * timeout is in force, the engine's bookkeeping and COMMIT run under the engine's. Omitted: unchanged.
   */
  readonly statementTimeoutMs?: number;
}

/**
 * Moves a consumer partition's checkpoint and adds to its handled count, in the delivery transaction.
 *
 * One simple-protocol round trip, timeout switch included: Postgres applies `statement_timeout` to each
 * statement of such a message separately, so the UPDATE already runs under the new one. Hence no
 * parameters: every inlined value is checked here (digits, integers, a checked consumer name).
 */
export async function saveCheckpoint(
  executor: QueryExecutorProvider,
  input: SaveCheckpointInput,
): Promise<void> {
  const { logXid, position } = input.checkpoint;
  if (!/^\d+$/.test(logXid) || !/^\d+$/.test(position)) {
    throw new TypeError(`invalid checkpoint ${logXid}/${position}`);
  }
  if (!Number.isInteger(input.partition) || !Number.isInteger(input.handled)) {
    throw new TypeError(`invalid checkpoint counts ${input.partition}/${input.handled}`);
  }
  const timeout =
    input.statementTimeoutMs === undefined
      ? ''
      : `select set_config('statement_timeout', '${Math.trunc(input.statementTimeoutMs)}', true);\n`;
  await sql
    .raw(
      `${timeout}update outbox.consumer_partitions
       set checkpoint_xid = '${logXid}'::xid8, checkpoint_position = ${position},
           handled = handled + ${input.handled}, updated_at = now()
       where consumer = '${checkedConsumerName(input.consumer)}' and partition = ${input.partition}`,
    )
    .execute(executor);
}
