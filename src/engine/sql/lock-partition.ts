import { partitionLockArgs } from '../db/lock-keys.ts';

/** Parameters of {@link lockPartitionStatement}. */
export interface LockPartitionInput {
  readonly consumer: string;
  readonly partition: number;
  /** `statement_timeout` of the engine's statements that follow, ms (handlers get theirs separately). */
  readonly statementTimeoutMs: number;
  /** How long to wait for the lock before giving up with 55P03, e.g. `'250ms'`. */
  readonly lockWait: string;
  /**
   * `idle_in_transaction_session_timeout` of the transaction, ms: a drainer that stops responding (frozen
   * process, lost host) loses its session — and the partition's lock with it — after this long idle.
   */
  readonly idleTimeoutMs: number;
  /**
   * Commit without waiting for the WAL flush (`synchronous_commit = off` for this transaction); otherwise
   * the session's setting stands.
   */
  readonly asyncCommit?: boolean;
}

/**
 * The first statement of a delivery transaction: sets the transaction's timeouts, takes the partition's
 * drain lock (one drainer per consumer partition) and sets the savepoint `batch` that a careful rerun
 * rolls back to — in ONE round trip. It has no parameters, so pg sends it over the simple protocol, which
 * takes several statements at once; every inlined value is an integer or checked by `partitionLockArgs`.
 * The select list is evaluated left to right: the timeouts are set before the lock is requested.
 */
export function lockPartitionStatement(input: LockPartitionInput): string {
  return `select set_config('statement_timeout', '${Math.trunc(input.statementTimeoutMs)}', true),
                 set_config('idle_in_transaction_session_timeout', '${Math.trunc(input.idleTimeoutMs)}', true),
                 set_config('lock_timeout', '${input.lockWait.replace(/[^0-9a-z]/g, '')}', true),
                 ${input.asyncCommit ? "set_config('synchronous_commit', 'off', true)," : ''}
                 pg_advisory_xact_lock(${partitionLockArgs(input.consumer, input.partition)});
          savepoint batch`;
}

/** SQLSTATE of a lock wait that ran out (`lock_not_available`): another drainer holds the partition. */
export const LOCK_NOT_AVAILABLE = '55P03';
