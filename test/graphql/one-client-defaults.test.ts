import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { silentLogger } from '../../src/logger.ts';
import { type Service, startService } from '../../src/main.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

let database: TestDatabase;
let service: Service;

beforeAll(async () => {
  database = await createTestDatabase();
  // Every setting at its default, as `npm start` would run it (auth off, as on the embedded database).
  const config = loadConfig({
    DATABASE_URL: database.url,
    PORT: '0',
    POSTBOX_AUTH: 'off',
    LOG_LEVEL: 'silent',
  });
  service = await startService(config, silentLogger);
});

afterAll(async () => {
  await service?.stop();
  await database?.drop();
});

describe('the defaults and one ordinary client', () => {
  it('places 200 orders and follows each to its final state without a single 429', async () => {
    const statuses = new Map<number, number>();
    const call = async <T>(query: string, variables: Record<string, unknown> = {}): Promise<T> => {
      const response = await fetch(service.apiUrl ?? '', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query, variables }),
      });
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      const body = (await response.json()) as { data?: T; errors?: unknown };
      if (!body.data) throw new Error(`HTTP ${response.status}: ${JSON.stringify(body.errors)}`);
      return body.data;
    };
    await call(
      'mutation { addProduct(input: {sku: "MUG", name: "Mug", priceCents: 1200, stock: 100000}) { __typename } }',
    );
    // A backend serving a few checkouts at once: each places its order, polls it every 100 ms until it is
    // final, then reads its events.
    let next = 0;
    let unfinished = 0;
    const checkout = async () => {
      while (next < 200) {
        const i = next++;
        const { placeOrder } = await call<{ placeOrder: { order: { id: string } } }>(
          `mutation ($key: String!) { placeOrder(input: {customerId: "shop-backend", idempotencyKey: $key,
             lines: [{sku: "MUG", quantity: 1}]}) { ... on PlaceOrderSuccess { order { id } } } }`,
          { key: `order-${i}` },
        );
        const deadline = Date.now() + 30_000;
        for (;;) {
          const { order } = await call<{ order: { final: boolean } }>(
            'query ($id: ID!) { order(id: $id) { final } }',
            { id: placeOrder.order.id },
          );
          if (order.final) {
            // …and, once final, reads what happened to it (for its own records).
            await call('query ($id: ID!) { order(id: $id) { status events { type } } }', {
              id: placeOrder.order.id,
            });
            break;
          }
          if (Date.now() > deadline) {
            unfinished++;
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    };
    await Promise.all([checkout(), checkout(), checkout(), checkout()]);
    expect(unfinished).toBe(0);
    expect(Object.fromEntries(statuses)).toEqual({ 200: expect.any(Number) });
    console.log(`one client: ${[...statuses.values()].reduce((a, b) => a + b, 0)} requests, all 200`);
  }, 120_000);
});
