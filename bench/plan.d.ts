import type { BenchPlan } from './scenario.ts';
/**
 * The full run (≈ 10 minutes on 2 cores) or the `--quick` smoke run (≈ 1.5 minutes); `scale` multiplies every
 * duration and backlog size (e.g. `0.05` for a test that only checks the bench completes). Client counts
 * and rates (concurrencies, the paced order rate, the 200 subscribers, subscription write rates) are not
 * scaled: they are what the scenarios are about.
 */
export declare function makePlan(quick: boolean, scale?: number): BenchPlan;
//# sourceMappingURL=plan.d.ts.map
