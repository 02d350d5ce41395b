import pg from 'pg';
import type { Logger } from '../logger.ts';

// bigint (int8) comes back as a string by default; positions stay strings end to end (they can exceed 2^53
// in theory), but counts from count(*) are small, so callers cast those explicitly in SQL.

/** Options of {@link createPool}. */
export interface PoolOptions {
  readonly connectionString: string;
  /** Default `20`. */
  readonly max?: number;
  /** `application_name` seen in pg_stat_activity. Default `postbox`. */
  readonly applicationName?: string;
  /** Server settings for every connection, as in libpq's `options` (e.g. `-c synchronous_commit=off`). */
  readonly options?: string;
  readonly logger: Logger;
}

/**
 * A pg Pool with an `error` listener: without one, an idle client whose server connection dies (Postgres
 * restarted, connection terminated) emits an unhandled `error` and crashes the process. The pool then
 * simply replaces the client on next use.
 */
export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 20,
    application_name: options.applicationName ?? 'postbox',
    ...(options.options ? { options: options.options } : {}),
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
  const describe = (error: Error & { code?: string }) => ({ message: error.message, code: error.code });
  pool.on('error', (error) =>
    options.logger.warn({ err: describe(error) }, 'idle postgres connection failed'),
  );
  // A checked-out client can fail too (server restart mid-query); the query rejects, and this listener keeps
  // the client's own 'error' event from crashing the process.
  pool.on('connect', (client) => {
    client.on('error', (error) =>
      options.logger.debug({ err: describe(error) }, 'postgres connection failed'),
    );
  });
  return pool;
}
