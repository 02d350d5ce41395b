/**
 * Every default of the engine, in one place. Options document their default where they are declared and
 * take the value from here, so a default changes in one line.
 */
export const DEFAULTS = Object.freeze({
  /** Partition drains a process runs at once from graphile-worker's queue (`startPostbox`). */
  concurrency: 8,
  /** The relay's poll: the guarantee behind NOTIFY wake-ups, ms. */
  pollIntervalMs: 2000,
  /** Time one queued drain job may keep its worker slot before it hands over, ms. */
  drainBudgetMs: 1000,
  /**
   * `statement_timeout` of the engine's own statements in a delivery transaction (reading the partition,
   * recording failures, the checkpoint, COMMIT), ms. Handlers' statements get their consumer's `timeoutMs`.
   */
  statementTimeoutMs: 60_000,
  /**
   * How long a consumer definition stays live without a running process refreshing it (each process does
   * every poll interval), ms: until then, old code's event types are still delivered — to old code.
   */
  definitionLeaseMs: 30_000,
  /**
   * How long a process that stops responding (frozen, stopped, cut off) keeps its relay leadership and its
   * partitions before the server ends its sessions, ms (see `startPostbox`'s `sessionTimeoutMs`).
   */
  sessionTimeoutMs: 60_000,
  /** Connections of the pool `startPostbox` makes when given a connection string instead of a pool. */
  poolSize: 10,
  /** Per consumer (`defineConsumer`). */
  consumer: Object.freeze({
    partitions: 8,
    batchSize: 100,
    batchBytes: 16 * 1024 * 1024,
    timeoutMs: 30_000,
    onExhausted: 'dead_letter' as const,
    startFrom: 'beginning' as const,
    asyncCommit: false,
    retry: Object.freeze({ maxAttempts: 8, initialDelayMs: 1000, maxDelayMs: 300_000, jitter: 0.2 }),
  }),
  /** Per destination (`defineDestination`, `createDestination`). */
  destination: Object.freeze({
    /** Requests in flight at most (it is the destination's partition count, fixed at creation). */
    maxInFlight: 8,
    /** Events per delivery transaction. */
    batchSize: 50,
    /** One HTTP request, connect to last byte, ms. */
    timeoutMs: 10_000,
    onExhausted: 'dead_letter' as const,
    /** A new destination receives what is appended from now on (not the history). */
    startFrom: 'now' as const,
    retry: Object.freeze({ maxAttempts: 8, initialDelayMs: 1000, maxDelayMs: 300_000, jitter: 0.2 }),
    /** The circuit opens after this many consecutive failures and stays open `coolDownMs`. */
    breaker: Object.freeze({ failureThreshold: 5, coolDownMs: 30_000 }),
    /** After a secret rotation, the previous secret keeps signing for this long, ms. */
    rotationOverlapMs: 86_400_000,
    /** Delivery attempts kept per destination in `outbox.destination_attempts`. */
    attemptLogSize: 200,
  }),
});
