import type { ScenarioModule } from '../scenario.ts';
/**
 * Scenario 3: a backlog of N committed events delivered to a no-op consumer (8 partitions, 8 workers), and
 * the naive design — one graphile-worker job per event, added with `add_jobs`, run by a no-op task at the
 * same concurrency; that design is timed over at most `naiveMaxSeconds` of its backlog. Each round uses a
 * fresh database and rotates the order of the designs. The target
 * compares against graphile-worker's defaults; its batched mode (localQueue + batched completion, which
 * trades away named-queue ordering and adds pickup latency) is reported alongside for context.
 */
export declare const drainScenario: ScenarioModule;
//# sourceMappingURL=drain.scenario.d.ts.map
