import { appendScenario } from './append.scenario.js';
import { drainScenario } from './drain.scenario.js';
import { latencyScenario } from './latency.scenario.js';
import { notifyScenario } from './notify.scenario.js';
import { shopScenario } from './shop.scenario.js';
import { subscriptionsScenario } from './subscriptions.scenario.js';
/**
 * Every scenario, in run order (the latency scenario loads against the capacity the append scenario
 * measured). To add one, write a {@link ScenarioModule} and list it here.
 */
export const scenarios = [
  appendScenario,
  drainScenario,
  latencyScenario,
  shopScenario,
  subscriptionsScenario,
  notifyScenario,
];
//# sourceMappingURL=index.js.map
