/** A handler call that did not succeed. */
export interface Failure {
  readonly error: Error;
  /** A timeout leaves the handler possibly still running: the transaction must be abandoned, not reused. */
  readonly poisonsTransaction: boolean;
  /**
   * Retrying cannot help (the stored payload does not match its schema): the event is exhausted at once,
   * dead-lettered or blocking per the consumer's policy, without burning retries.
   */
  readonly permanent: boolean;
  /**
   * Not an attempt: the handler could not try now (a destination's circuit is open, or it was disabled).
   * Nothing is recorded and no attempt is used; the event and the rest of the partition wait until then.
   */
  readonly deferUntil?: Date;
  /** The handler asked for the next attempt no sooner than this (an HTTP `Retry-After`), ms. */
  readonly retryAfterMs?: number;
}

/**
 * Thrown by a handler that cannot attempt delivery now — a destination whose circuit is open — so that
 * the event waits without using an attempt. Honoured by consumers that deliver outside
 * (`ConsumerDefinition.deliversOutside`); any other consumer treats it as a failure.
 */
export class DeliveryDeferred extends Error {
  /** When to look again. */
  readonly until: Date;
  constructor(until: Date, reason: string) {
    super(reason);
    this.until = until;
  }
}

/** Thrown inside a fast-mode batch to abandon it and rerun carefully (a savepoint per handler). */
export class RerunCarefully extends Error {
  /** The transaction must be rolled back entirely (a timed-out handler may still be using it). */
  readonly abandonTransaction: boolean;
  constructor(abandonTransaction: boolean) {
    super('rerun the batch with savepoints');
    this.abandonTransaction = abandonTransaction;
  }
}

/** How long an unrecorded failure is remembered, ms. */
const REMEMBER_MS = 300_000;

/**
 * Handler failures this process has seen but not yet recorded (their transaction was abandoned). Shared by
 * all drains of the process, so a drain that takes over the partition does not call a known-failing handler
 * again for the same attempt; entries go when recorded, or after five minutes.
 */
export const recentFailures = (() => {
  const entries = new Map<string, { failure: Failure; at: number }>();
  return {
    remember(consumer: string, eventId: string, failure: Failure): void {
      entries.set(`${consumer}:${eventId}`, { failure, at: Date.now() });
    },
    take(consumer: string, eventId: string, remove: boolean): Failure | undefined {
      const key = `${consumer}:${eventId}`;
      const entry = entries.get(key);
      if (!entry) return undefined;
      const expired = Date.now() - entry.at > REMEMBER_MS;
      if (remove || expired) entries.delete(key);
      return expired ? undefined : entry.failure;
    },
  };
})();
