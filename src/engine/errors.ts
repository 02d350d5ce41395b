/**
 * Postbox's error hierarchy. Every error a caller is expected to handle carries a stable `code`, so API
 * layers can map it (GraphQL result unions, CLI exit codes) without matching on messages.
 */
export abstract class PostboxError extends Error {
  /** Stable, machine-readable identifier of the failure kind. */
  abstract readonly code: string;
  override get name(): string {
    return this.constructor.name;
  }
}

/** Configuration could not be read; `problems` holds one line per offending variable. */
export class ConfigError extends PostboxError {
  readonly code = 'CONFIG_INVALID';
  /** One line per offending variable. */
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[] = []) {
    super(message);
    this.problems = problems;
  }
}

/** Input was rejected before anything was written. `field` is the dotted path of the first bad field. */
export class ValidationError extends PostboxError {
  readonly code = 'VALIDATION_FAILED';
  /** Dotted path of the first bad field, e.g. `payload.lines.0.quantity`. */
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.field = field;
  }
}

/** A stream moved on since the writer read it (optimistic concurrency); safe to retry with fresh state. */
export class ConcurrencyError extends PostboxError {
  readonly code = 'CONCURRENCY_CONFLICT';
  readonly streamType: string | undefined;
  readonly streamId: string | undefined;
  readonly expectedVersion: number | undefined;
  readonly actualVersion: number | undefined;
  constructor(
    message: string,
    streamType?: string,
    streamId?: string,
    expectedVersion?: number,
    actualVersion?: number,
  ) {
    super(message);
    this.streamType = streamType;
    this.streamId = streamId;
    this.expectedVersion = expectedVersion;
    this.actualVersion = actualVersion;
  }
}

/** The thing asked for does not exist. */
export class NotFoundError extends PostboxError {
  readonly code = 'NOT_FOUND';
}

/** The thing to create already exists (a destination or consumer name is taken). */
export class ConflictError extends PostboxError {
  readonly code = 'CONFLICT';
  /** The input field that collides, e.g. `name`. */
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.field = field;
  }
}

/** A state change that the current state does not allow (e.g. shipping a cancelled order). */
export class IllegalStateError extends PostboxError {
  readonly code = 'ILLEGAL_STATE';
}

/** The migrations on disk and in the database disagree (an applied file was edited or removed). */
export class MigrationError extends PostboxError {
  readonly code = 'MIGRATION_FAILED';
}

/** A handler did not finish within its consumer's timeout. */
export class HandlerTimeoutError extends PostboxError {
  readonly code = 'HANDLER_TIMEOUT';
}

/**
 * The log's transaction ids are ahead of the database cluster's counter (a dump/restore or a logical
 * replication cut-over): delivery would stop or skip events, so the engine does not start.
 */
export class LogOrderError extends PostboxError {
  readonly code = 'LOG_ORDER_AHEAD';
  /** The highest transaction id in the log or a checkpoint. */
  readonly logXid: string;
  /** The cluster's next transaction id. */
  readonly nextXid: string;
  constructor(message: string, logXid: string, nextXid: string) {
    super(message);
    this.logXid = logXid;
    this.nextXid = nextXid;
  }
}
