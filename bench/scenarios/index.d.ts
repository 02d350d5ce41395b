import type { ScenarioModule } from '../scenario.ts';
/**
 * Every scenario, in run order (the latency scenario loads against the capacity the append scenario
 * measured). To add one, write a {@link ScenarioModule} and list it here.
 */
export declare const scenarios: readonly ScenarioModule[];
//# sourceMappingURL=index.d.ts.map
