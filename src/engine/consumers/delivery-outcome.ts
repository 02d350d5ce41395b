import type { Logger } from '../logger.ts';
import type { EventRegistry } from '../outbox/read.ts';

/** Options of a partition drain (`drainPartition`). */
export interface DrainOptions {
  readonly logger: Logger;
  /** Upcasts and validates payloads before handlers see them. */
  readonly registry: EventRegistry;
  /**
   * `statement_timeout` of the engine's own statements in the delivery transaction, ms; the handlers'
   * statements get the consumer's `timeoutMs` instead. Default `60000` (`DEFAULTS.statementTimeoutMs`).
   */
  readonly statementTimeoutMs?: number;
  /**
   * A delivery transaction left idle this long loses its session (and its partition): the process froze or
   * lost its host. At least the consumer's `timeoutMs` + 1 s. Default `60000` (`DEFAULTS.sessionTimeoutMs`).
   */
  readonly sessionTimeoutMs?: number;
  /** Reports each delivery (for metrics) once its transaction committed; never throws into the drain. */
  readonly onDelivery?: (outcome: DeliveryOutcome) => void;
}

/** One handler call, as reported to {@link DrainOptions.onDelivery}. */
export interface DeliveryOutcome {
  readonly consumer: string;
  readonly eventType: string;
  readonly ok: boolean;
  readonly durationMs: number;
  readonly deadLettered: boolean;
}
