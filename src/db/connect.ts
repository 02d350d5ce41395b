import type pg from 'pg';
import type { Config } from '../config/config.ts';
import { createDb, createPool } from '../engine/index.ts';
import type { Logger } from '../logger.ts';
import type { Database, Db } from './database.ts';
import { type EmbeddedPostgres, runningEmbeddedServer, startEmbeddedPostgres } from './embedded.ts';

/** An open database: the pool, Kysely over it, and the embedded server when there is one. */
export interface OpenDatabase {
  readonly pool: pg.Pool;
  readonly db: Db;
  readonly connectionString: string;
  /** The embedded server, when `DATABASE_URL` was unset. */
  readonly embedded: EmbeddedPostgres | undefined;
  /** Ends the pool, then stops the embedded server (if any). Call after everything using the pool stopped. */
  close(): Promise<void>;
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /**
   * When another process (`npm start`) already runs the embedded Postgres of `config.dataDir`, connect to
   * it instead of refusing the locked directory. For short admin commands. Default `false`.
   */
  readonly shareRunningEmbedded?: boolean;
}

/**
 * Connects to `config.databaseUrl`, or starts the embedded Postgres under `config.dataDir` when it is unset
 * (or, with `shareRunningEmbedded`, connects to the one another process runs there).
 */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir' | 'embeddedPgPort' | 'poolSize'>,
  logger: Logger,
  options: OpenDatabaseOptions = {},
): Promise<OpenDatabase> {
  let embedded: EmbeddedPostgres | undefined;
  let connectionString = config.databaseUrl;
  if (!connectionString && options.shareRunningEmbedded) {
    connectionString = (await runningEmbeddedServer(config.dataDir))?.connectionString;
    if (connectionString) logger.debug({ dataDir: config.dataDir }, 'using the running embedded postgres');
  }
  if (!connectionString) {
    embedded = await startEmbeddedPostgres({ dir: config.dataDir, port: config.embeddedPgPort, logger });
    connectionString = embedded.connectionString;
    logger.info({ port: embedded.port, dataDir: config.dataDir }, 'embedded postgres running');
  }
  const pool = createPool({ connectionString, max: config.poolSize, logger });
  const db = createDb<Database>(pool);
  let closing: Promise<void> | undefined;
  return {
    pool,
    db,
    connectionString,
    embedded,
    close() {
      closing ??= (async () => {
        // pool.end() directly: Kysely's destroy() only ends a pool its driver initialised (on a first query).
        await pool.end();
        await embedded?.stop();
      })();
      return closing;
    },
  };
}
