/**
 * What the engine logs through: the subset of pino's API it uses, so an application passes its own pino
 * logger (or anything shaped like it: a child of a Fastify logger, a thin console adapter) and Postbox
 * never picks a logging library for it. Without one the engine logs nothing.
 */
export interface Logger {
  child(bindings: Record<string, unknown>): Logger;
  debug(object: object, message?: string): void;
  info(object: object, message?: string): void;
  warn(object: object, message?: string): void;
  error(object: object, message?: string): void;
  fatal(object: object, message?: string): void;
}

const drop = (): void => {};

/** A logger that drops everything: the default when the application passes none. */
export const silentLogger: Logger = Object.freeze({
  child: () => silentLogger,
  debug: drop,
  info: drop,
  warn: drop,
  error: drop,
  fatal: drop,
});
