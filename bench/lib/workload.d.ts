import { type Kysely } from 'kysely';
import type pg from 'pg';
import { z } from 'zod';
/** The event every bench transaction appends: one per order, its own stream. */
export declare const OrderPlaced: import('../../src/engine/outbox/event.ts').EventDefinition<
  'OrderPlaced',
  {
    orderId: string;
    customerId: string;
    totalCents: number;
    lines: {
      sku: string;
      quantity: number;
    }[];
  }
>;
/** One order of the workload: the business row and the payload of its event (≈ 180 bytes of JSON). */
export interface Order {
  readonly orderId: string;
  readonly customerId: string;
  readonly totalCents: number;
  readonly payload: z.output<typeof OrderPlaced.schema>;
}
/** A new order (fresh uuid, one of 1000 customers, two lines). */
export declare function makeOrder(): Order;
/**
 * The physical limit: `BEGIN; INSERT order; INSERT event row; COMMIT` with plain pg calls, the event row
 * going to the bench's minimal outbox table. No Postbox code.
 */
export declare function rawOrderTransaction(pool: pg.Pool): Promise<void>;
/**
 * The same work through Postbox: the order row and `appendEvents` (one `OrderPlaced`) in one Kysely
 * transaction. Calls `onCommitted(eventId)` right after COMMIT resolved.
 */
export declare function appendOrderTransaction<DB>(
  db: Kysely<DB>,
  onCommitted?: (eventId: string) => void,
): Promise<void>;
/** Result of {@link runClosedLoop}. */
export interface ClosedLoopResult {
  readonly completed: number;
  readonly failed: number;
  readonly seconds: number;
  /** Completed transactions per second. */
  readonly rate: number;
}
/**
 * `concurrency` clients each run `transaction` back to back for `seconds`; the rate counts transactions
 * that completed, over the time until the last client finished.
 */
export declare function runClosedLoop(
  concurrency: number,
  seconds: number,
  transaction: () => Promise<void>,
): Promise<ClosedLoopResult>;
/** Options of {@link runOpenLoop}. */
export interface OpenLoopOptions {
  /** Transactions started per second, on schedule, whatever the system's response. */
  readonly rate: number;
  readonly seconds: number;
  /** Transactions in flight at most (the producer's connections); beyond that, due ones queue. */
  readonly maxInFlight: number;
  readonly transaction: () => Promise<void>;
  /** Called every `sampleMs` with seconds since start and the transactions due by now (on schedule). */
  readonly onSample?: (elapsedSeconds: number, due: number) => void;
  readonly sampleMs?: number;
}
/** Result of {@link runOpenLoop}. */
export interface OpenLoopResult {
  readonly started: number;
  readonly completed: number;
  readonly failed: number;
  readonly seconds: number;
  /** Transactions that were due but never started (the producer could not keep its schedule). */
  readonly behind: number;
}
/**
 * Steady load: starts transactions on a fixed schedule (an open loop, so a slow system does not slow the
 * offered load down), up to `maxInFlight` at once.
 */
export declare function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult>;
//# sourceMappingURL=workload.d.ts.map
