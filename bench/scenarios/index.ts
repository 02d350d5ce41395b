import type { ScenarioModule } from '../scenario.ts';
import { appendScenario } from './append.scenario.ts';
import { brokerScenario } from './broker.scenario.ts';
import { drainScenario } from './drain.scenario.ts';
import { latencyScenario } from './latency.scenario.ts';
import { notifyScenario } from './notify.scenario.ts';
import { shopScenario } from './shop.scenario.ts';
import { subscriptionsScenario } from './subscriptions.scenario.ts';
import { webhookScenario } from './webhook.scenario.ts';

/**
 * Every scenario, in run order (the latency scenario loads against the capacity the append scenario
 * measured). To add one, write a {@link ScenarioModule} and list it here.
 */
export const scenarios: readonly ScenarioModule[] = [
  appendScenario,
  drainScenario,
  latencyScenario,
  shopScenario,
  subscriptionsScenario,
  notifyScenario,
  webhookScenario,
  brokerScenario,
];
