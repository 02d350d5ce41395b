import type pg from 'pg';
import { type Summary } from '../lib/stats.ts';
import type { ScenarioModule } from '../scenario.ts';
/**
 * Scenarios 1 and 2, measured together on one database: the raw transaction (the limit) and the same
 * work through `appendEvents`, in interleaved rounds (baseline, append, append, baseline, …) of equal
 * duration at each concurrency, so drift of the machine falls on both alike. The ratio is taken per round
 * pair, then its median.
 *
 * The relay is marked awake (`outbox.relay_sleeping` = 0) for the whole scenario: that is the state a loaded
 * system is in (the wake-up trigger then runs its check and sends no NOTIFY). The NOTIFY cost itself is
 * scenario 7.
 */
export declare const appendScenario: ScenarioModule;
/** Opens `count` connections up front, so no round pays for connecting. */
export declare function openConnections(pool: pg.Pool, count: number): Promise<void>;
/** A summary with readable numbers for the JSON. */
export declare function roundSummary(summary: Summary, digits?: number): Summary;
/** The chart's view of a summary. */
export declare function minMax(summary: Summary): {
  median: number;
  min: number;
  max: number;
};
//# sourceMappingURL=append.scenario.d.ts.map
