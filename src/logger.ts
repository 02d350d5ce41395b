import { pino } from 'pino';
import type { Config } from './config/config.ts';

/** The logger type used across Postbox (pino). */
export type Logger = pino.Logger;

/**
 * Builds the process logger: JSON lines in production (one object per line, ready for a log shipper),
 * pretty-printed in development when stdout is a terminal.
 */
export function createLogger(config: Pick<Config, 'logLevel' | 'nodeEnv'>): Logger {
  const pretty = config.nodeEnv === 'development' && process.stdout.isTTY;
  return pino({
    level: config.logLevel,
    base: { service: 'postbox' },
    ...(pretty
      ? { transport: { target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname,service' } } }
      : {}),
  });
}

/** A logger that drops everything: for tests and library callers that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
