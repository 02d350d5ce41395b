import type { Config } from '../config/config.ts';
import { loadConfig } from '../config/config.ts';
import { type OpenDatabase, openDatabase } from '../db/connect.ts';
import { createLogger, type Logger } from '../logger.ts';

/** What a one-shot CLI command works with: the configured database, the config and a quiet logger. */
export interface CommandContext {
  readonly database: OpenDatabase;
  readonly config: Config;
  readonly logger: Logger;
}

/**
 * Runs a one-shot command against the configured database (a running embedded server is shared) and
 * closes it afterwards, whatever `work` does. The log level drops to `warn` unless set otherwise: the
 * command's own output is what the operator reads.
 */
export async function withCommandDatabase<T>(work: (context: CommandContext) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const logger = createLogger({ ...config, logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel });
  const database = await openDatabase(config, logger, { shareRunningEmbedded: true });
  try {
    return await work({ database, config, logger });
  } finally {
    await database.close();
  }
}
