import type { ScenarioModule } from '../scenario.ts';
import { appendScenario } from './append.scenario.ts';
import { drainScenario } from './drain.scenario.ts';
import { latencyScenario } from './latency.scenario.ts';
import { notifyScenario } from './notify.scenario.ts';
import { graphqlShopScenario, subscriptionsScenario } from './pending.scenario.ts';

/**
 * Every scenario, in run order (the latency scenario loads against the capacity the append scenario
 * measured). To add one, write a {@link ScenarioModule} and list it here.
 */
export const scenarios: readonly ScenarioModule[] = [
  appendScenario,
  drainScenario,
  latencyScenario,
  graphqlShopScenario,
  subscriptionsScenario,
  notifyScenario,
];
