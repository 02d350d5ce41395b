import type { ScenarioModule } from '../scenario.ts';
/**
 * Scenario 7: append throughput at one concurrency with the wake-up NOTIFY forced on every transaction
 * (`always`) or off (`never`) — the raw cost of a NOTIFY — and the engine's default (NOTIFY only while the
 * relay sleeps) with the relay and a no-op consumer running in this process, against `never` under the
 * same running system: the cost of the design as shipped. Interleaved rounds, order rotated per round;
 * each relay round registers a fresh consumer starting `now`, so it delivers only that round's events.
 */
export declare const notifyScenario: ScenarioModule;
//# sourceMappingURL=notify.scenario.d.ts.map
