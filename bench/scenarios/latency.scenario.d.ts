import type { ScenarioModule } from '../scenario.ts';
/**
 * Scenario 4: steady (open-loop) load at shares of the append capacity (measured at the start of the
 * scenario, without delivery running), with
 * Postbox running with its defaults and a no-op consumer in the same process. Latency is commit → handler
 * start on one clock: the producer stamps `performance.now()` when COMMIT has resolved, keyed by event id;
 * the handler stamps its start. The lag (transactions due by the schedule — committed or still queued in
 * the producer — minus events handed to the handler) is sampled every 250 ms.
 */
export declare const latencyScenario: ScenarioModule;
//# sourceMappingURL=latency.scenario.d.ts.map
