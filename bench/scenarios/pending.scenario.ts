import type { ScenarioModule } from '../scenario.ts';

/** A scenario that is specified but waits on a part of Postbox that does not exist yet. */
function pendingScenario(key: string, number: number, title: string, reason: string): ScenarioModule {
  return {
    keys: [key],
    title,
    steps: () => 0,
    async run() {
      return {
        results: { [key]: { status: 'pending', scenario: number, title, reason } },
        rows: [
          {
            scenario: `${number} ${title}`,
            figure: '',
            median: 'pending',
            spread: reason,
            ratio: '',
            target: '',
          },
        ],
      };
    },
  };
}

/** Scenario 5: placeOrder over HTTP through GraphQL, concurrency 8 and 32. */
export const graphqlShopScenario = pendingScenario(
  'graphql_shop',
  5,
  'Shop flow (GraphQL placeOrder)',
  'waits for the GraphQL API',
);

/** Scenario 6: 100 SSE + 100 WebSocket subscribers. */
export const subscriptionsScenario = pendingScenario(
  'subscriptions',
  6,
  'Subscriptions (SSE + WebSocket)',
  'waits for the GraphQL API',
);
