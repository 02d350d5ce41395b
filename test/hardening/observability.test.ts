import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/auth/api-keys.ts';
import { loadConfig } from '../../src/config/config.ts';
import { readStream } from '../../src/engine/outbox/read.ts';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { type Service, startService } from '../../src/main.ts';
import { checkReadiness } from '../../src/observability/health.ts';
import { addProduct } from '../../src/shop/product.service.ts';
import { gql, gqlData, PLACE_ORDER } from '../graphql/graphql-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import { type RunningShop, startShop, waitForOrder } from '../shop/shop-fixtures.ts';
import { bearer, captureLogs, wsClient } from './hardening-fixtures.ts';

/** The service as `postbox serve` runs it (auth on), on a database of its own. */
let database: TestDatabase;
let service: Service;
let apiKey: string;
const logs = captureLogs();

const origin = () => (service.apiUrl as string).replace(/\/graphql$/, '');

beforeAll(async () => {
  database = await createTestDatabase();
  apiKey = (await createApiKey(database.db, { name: 'ops-test', scopes: ['admin'] })).key;
  await addProduct(database.db, { sku: 'O-KEYB', name: 'Keyboard', priceCents: 8_900, stock: 1000 });
  const config = loadConfig({
    DATABASE_URL: database.url,
    HOST: '127.0.0.1',
    PORT: '0',
    NODE_ENV: 'test',
    POSTBOX_AUTH: 'on',
    POSTBOX_POLL_INTERVAL_MS: '100',
    POSTBOX_POOL_SIZE: '10',
  });
  service = await startService(config, logs.logger);
});

afterAll(async () => {
  await service?.stop();
  await database?.drop();
});

describe('operational routes on the API port (no credentials needed)', () => {
  it('/healthz answers 200 while the process runs', async () => {
    const response = await fetch(`${origin()}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('/readyz reports the database, the migrations and the workers', async () => {
    const response = await fetch(`${origin()}/readyz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      ready: true,
      checks: {
        database: { ok: true, detail: 'reachable' },
        migrations: { ok: true, detail: expect.stringMatching(/applied$/) },
        workers: { ok: true, detail: 'running' },
      },
    });
  });

  it('the GraphQL endpoint itself still needs credentials', async () => {
    expect((await gql(service.apiUrl as string, '{ products { sku } }')).status).toBe(401);
  });

  it('/metrics serves Prometheus text counting deliveries, GraphQL operations and open subscriptions', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const placed = await gqlData<{ placeOrder: { order: { id: string } } }>(
      service.apiUrl as string,
      PLACE_ORDER,
      { input: { customerId: 'ada', idempotencyKey: 'metrics-1', lines: [{ sku: 'O-KEYB', quantity: 1 }] } },
      {
        ...bearer(apiKey),
        traceparent: `00-${traceId}-b7ad6b7169203331-01`,
        'x-correlation-id': 'metrics-1',
      },
    );
    await waitForOrder(database.db, placed.placeOrder.order.id);

    const client = wsClient(service.apiUrl as string, { apiKey });
    const subscription = client.iterate({ query: 'subscription { events(fromBeginning: true) { type } }' });
    await subscription.next();

    const metrics = await waitFor('deliveries in /metrics', async () => {
      const response = await fetch(`${origin()}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await response.text();
      return /postbox_deliveries_total\{consumer="[a-z]+",event_type="OrderPlaced",outcome="success"\} 1/.test(
        text,
      )
        ? text
        : undefined;
    });
    expect(metrics).toMatch(/^# HELP postbox_deliveries_total /m);
    expect(metrics).toMatch(/^postbox_graphql_operations_total\{type="mutation"\} [1-9]/m);
    expect(metrics).toMatch(/^postbox_graphql_operations_total\{type="subscription"\} [1-9]/m);
    expect(metrics).toMatch(/^postbox_subscriptions_open 1$/m);
    expect(metrics).toMatch(/^postbox_relay_activity_total\{kind="[a-z]+"\} [1-9]/m);

    await subscription.return?.();
    await client.dispose();
    await waitFor('the subscription gauge to drop', async () =>
      /^postbox_subscriptions_open 0$/m.test(await (await fetch(`${origin()}/metrics`)).text()),
    );
  });

  it('logs JSON lines carrying the request correlation id and caller', async () => {
    await gqlData(
      service.apiUrl as string,
      'query Catalogue { products { sku } }',
      {},
      {
        ...bearer(apiKey),
        'x-correlation-id': 'log-1',
      },
    );
    const line = logs
      .lines()
      .find((entry) => entry.msg === 'graphql operation' && entry.correlationId === 'log-1');
    expect(line).toMatchObject({
      level: 20,
      operation: 'query',
      operationName: 'Catalogue',
      principal: expect.stringMatching(/^key:/),
      errors: 0,
      durationMs: expect.any(Number),
    });
  });
});

describe('trace context from the request to the handlers', () => {
  it("stores the request's traceparent on OrderPlaced, and the payment handler continues the same trace", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const traceparent = `00-${traceId}-00f067aa0ba902b7-01`;
    const placed = await gqlData<{ placeOrder: { order: { id: string } } }>(
      service.apiUrl as string,
      PLACE_ORDER,
      { input: { customerId: 'ada', idempotencyKey: 'trace-1', lines: [{ sku: 'O-KEYB', quantity: 1 }] } },
      { ...bearer(apiKey), traceparent, 'x-correlation-id': 'trace-1' },
    );
    const id = placed.placeOrder.order.id;
    await waitForOrder(database.db, id);
    const stream = await readStream(database.db, 'order', id);
    const orderPlaced = stream.find((event) => event.type === 'OrderPlaced');
    const paid = stream.find((event) => event.type === 'PaymentSucceeded');
    expect(orderPlaced?.metadata).toMatchObject({ traceparent, correlationId: 'trace-1' });
    expect(paid?.metadata).toMatchObject({
      correlationId: 'trace-1',
      traceparent: expect.stringMatching(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`)),
    });
  });

  it('ignores a malformed traceparent', async () => {
    const placed = await gqlData<{ placeOrder: { order: { id: string } } }>(
      service.apiUrl as string,
      PLACE_ORDER,
      { input: { customerId: 'ada', idempotencyKey: 'trace-2', lines: [{ sku: 'O-KEYB', quantity: 1 }] } },
      { ...bearer(apiKey), traceparent: 'not-a-traceparent' },
    );
    const [orderPlaced] = await readStream(database.db, 'order', placed.placeOrder.order.id);
    expect(orderPlaced?.metadata).not.toHaveProperty('traceparent');
  });
});

describe('start-up', () => {
  it('warns when the API runs without authentication', async () => {
    const open = captureLogs();
    const second = await startService(
      loadConfig({
        DATABASE_URL: database.url,
        HOST: '127.0.0.1',
        PORT: '0',
        NODE_ENV: 'test',
        POSTBOX_AUTH: 'off',
        POSTBOX_WORKERS: 'off',
      }),
      open.logger,
    );
    try {
      expect(open.lines().find((line) => line.level === 40)?.msg).toMatch(
        /^API authentication is OFF \(POSTBOX_AUTH=off\): every caller has every scope, only reachable from this machine/,
      );
      // Workers run elsewhere: that does not make this process unready.
      const ready = await fetch(`${(second.apiUrl as string).replace(/\/graphql$/, '')}/readyz`);
      expect(((await ready.json()) as { checks: { workers: unknown } }).checks.workers).toEqual({
        ok: true,
        detail: 'not run in this process',
      });
    } finally {
      await second.stop();
    }
  });

  it('warns when authentication is on but no credentials can exist', async () => {
    const empty = await createTestDatabase();
    const captured = captureLogs();
    const locked = await startService(
      loadConfig({
        DATABASE_URL: empty.url,
        HOST: '127.0.0.1',
        PORT: '0',
        NODE_ENV: 'test',
        POSTBOX_AUTH: 'on',
        POSTBOX_WORKERS: 'off',
      }),
      captured.logger,
    );
    try {
      expect(captured.lines().find((line) => line.level === 40)?.msg).toMatch(
        /no API key exists and no JWT key is configured: every request will get a 401/,
      );
    } finally {
      await locked.stop();
      await empty.drop();
    }
  });
});

describe('/readyz follows the engine', () => {
  let shop: RunningShop;
  let server: ApiServer;

  beforeAll(async () => {
    shop = await startShop();
    server = await startApiServer({
      db: shop.db,
      logger: silentLogger,
      auth: { enabled: true },
      host: '127.0.0.1',
      port: 0,
      readiness: () =>
        checkReadiness({ pool: shop.database.pool, workersRunning: () => shop.postbox.isRunning() }),
    });
  });

  afterAll(async () => {
    await server?.close();
    await shop?.stop();
  });

  it('answers 200, then 503 once the workers have stopped', async () => {
    const readyz = server.url.replace(/\/graphql$/, '/readyz');
    expect((await fetch(readyz)).status).toBe(200);
    await shop.postbox.stop();
    const response = await fetch(readyz);
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({
      ready: false,
      checks: { database: { ok: true }, workers: { ok: false, detail: 'stopped' } },
    });
    const healthz = await fetch(server.url.replace(/\/graphql$/, '/healthz'));
    expect(healthz.status).toBe(200);
  });
});
