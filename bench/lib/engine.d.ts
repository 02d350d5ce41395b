import { Logger as WorkerLogger } from 'graphile-worker';
import type pg from 'pg';
/** A graphile-worker logger that drops everything (the bench prints its own output). */
export declare const quietWorkerLogger: WorkerLogger;
/** Resolves once `done()` is true (checked every 2 ms); rejects after `timeoutMs`. */
export declare function waitUntil(done: () => boolean, timeoutMs: number, what?: () => string): Promise<void>;
/**
 * Writes `events` OrderPlaced events (each its own stream, version 1) straight into the log with set-based
 * INSERTs of up to 10,000 rows per transaction: the same rows `appendEvents` writes, in a fraction of the
 * time. Returns the seconds it took.
 */
export declare function fillEventBacklog(pool: pg.Pool, events: number): Promise<number>;
/** Before a timed drain: fresh planner statistics and no dirty pages left over from filling. */
export declare function settle(pool: pg.Pool, tables: readonly string[]): Promise<void>;
//# sourceMappingURL=engine.d.ts.map
