import { execFile } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { type DemoReport, runDemo } from '../../src/cli/demo.command.ts';
import { pauseConsumer, resumeConsumer } from '../../src/engine/consumers/admin.ts';
import { defineConsumer } from '../../src/engine/consumers/consumer.ts';
import { startPostbox } from '../../src/engine/postbox.ts';
import { startApiServer } from '../../src/graphql/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { shopConsumers } from '../../src/shop/shop.consumers.ts';
import { ProductAdded, SHOP_EVENTS } from '../../src/shop/shop.events.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor, waitForOrder } from '../shop/shop-fixtures.ts';

const run = promisify(execFile);

/** psql on PATH? CI machines may lack the client; tests skip only their psql part then. */
export const psqlPath: string | undefined = await run('sh', ['-c', 'command -v psql'])
  .then(({ stdout }) => stdout.trim() || undefined)
  .catch(() => undefined);

/** Runs `psql -X -q -v ON_ERROR_STOP=1 [--csv] -v k=v … -f <file> <url>`; rejects on a non-zero exit. */
export async function runPsql(
  url: string,
  file: string,
  variables: Readonly<Record<string, string>>,
  options: { csv?: boolean } = {},
): Promise<string> {
  if (!psqlPath) throw new Error('psql is not installed');
  const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...(options.csv ? ['--csv'] : [])];
  for (const [name, value] of Object.entries(variables)) args.push('-v', `${name}=${value}`);
  args.push('-f', file, url);
  // Only what psql needs: no PG* variables of the machine change its session.
  const { stdout } = await run(psqlPath, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  return stdout;
}

/** The consumer that fails in the filled database: it gives up on the GPU's ProductAdded (a dead letter). */
export const CATALOGUE_SYNC = 'catalogue-sync';
/** Its error message for a SKU. */
export const catalogueSyncError = (sku: string) =>
  `supplier feed refused ${sku}: limited editions are not listed`;

/** What {@link fillWithDemoFlow} did, to check the queries' answers against. */
export interface FilledDatabase {
  readonly database: TestDatabase;
  /** The demo's own report: orders per final status and events per type, as seen on the subscription. */
  readonly report: DemoReport;
  /** Events the steps after the demo appended, per type (on top of `report.eventTypes`). */
  readonly extraEvents: Readonly<Record<string, number>>;
  /** The order cancelled while RESERVED (shipping paused), and the correlation ids involved. */
  readonly cancelledReserved: { id: string; placedBy: string; cancelledBy: string; reason: string };
  /** The SKU restocked after the demo, and by how much. */
  readonly restocked: { sku: string; quantity: number };
  /** The demo's SKU prefix, e.g. `GPU-<run>`. */
  readonly gpuSku: string;
}

/**
 * A fresh database filled by the real flow: the shop's consumers (payment limit $6,000, so some payments
 * fail) plus {@link CATALOGUE_SYNC} run on it, and `postbox demo` places `orders` orders through the GraphQL
 * API (some cancelled at once, some rejected when the GPU runs out). Then, through the same API: an order is
 * cancelled while RESERVED (the shipping consumer paused meanwhile), so stock goes back and the payment is
 * refunded, and the GPU is restocked. Returns once every consumer is idle, with the engine stopped, so the
 * data stays still while the queries read it.
 */
export async function fillWithDemoFlow(orders: number): Promise<FilledDatabase> {
  const database = await createTestDatabase({ poolSize: 30 });
  const catalogueSync = defineConsumer({
    name: CATALOGUE_SYNC,
    on: [ProductAdded],
    retry: { maxAttempts: 3, initialDelayMs: 20, maxDelayMs: 40 },
    async handle(event) {
      if (event.payload.sku.startsWith('GPU-')) throw new Error(catalogueSyncError(event.payload.sku));
    },
  });
  const postbox = await startPostbox({
    pool: database.pool,
    connectionString: database.url,
    consumers: [...shopConsumers({ paymentLimitCents: 600_000 }), catalogueSync],
    events: SHOP_EVENTS,
    concurrency: 8,
    pollIntervalMs: 100,
    logger: silentLogger,
  });
  const server = await startApiServer({
    db: database.db,
    connectionString: database.url,
    logger: silentLogger,
    auth: { enabled: false },
    host: '127.0.0.1',
    port: 0,
  });
  try {
    try {
      return await driveFlow(database, server.url, orders);
    } finally {
      await server.close();
      await postbox.stop();
    }
  } catch (error) {
    await database.drop();
    throw error;
  }
}

/** The demo, then the steps after it (see {@link fillWithDemoFlow}). */
async function driveFlow(database: TestDatabase, url: string, orders: number): Promise<FilledDatabase> {
  const report = await runDemo({
    orders,
    concurrency: 8,
    url,
    cancelShare: 0.15,
    out: new PassThrough().resume(),
    progress: new PassThrough().resume(),
  });
  if (report.unfinished > 0) throw new Error(`the demo left ${report.unfinished} orders unfinished`);
  const gql = graphqlClient(url);

  // An order cancelled after its stock was reserved: hold shipping so it stays RESERVED long enough.
  await pauseConsumer(database.db, 'shipping');
  const placedBy = 'sql-test-place';
  const placed = await gql<{ placeOrder: { order?: { id: string } } }>(
    placedBy,
    `mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { ... on PlaceOrderSuccess { order { id } } } }`,
    {
      input: {
        customerId: 'customer-sql',
        idempotencyKey: placedBy,
        lines: [{ sku: `KEYB-${report.run}`, quantity: 2 }],
      },
    },
  );
  const id = placed.placeOrder.order?.id;
  if (!id) throw new Error(`placeOrder failed: ${JSON.stringify(placed)}`);
  await waitForOrder(database.db, id, (order) => order.status === 'RESERVED');
  const cancelledBy = 'sql-test-cancel';
  const reason = 'found it cheaper';
  const cancel = await gql<{ cancelOrder: { __typename: string } }>(
    cancelledBy,
    `mutation($id: ID!, $reason: String!) { cancelOrder(orderId: $id, reason: $reason) { __typename } }`,
    { id, reason },
  );
  if (cancel.cancelOrder.__typename !== 'CancelOrderSuccess') throw new Error(JSON.stringify(cancel));
  await resumeConsumer(database.db, 'shipping');

  const restocked = { sku: `GPU-${report.run}`, quantity: 5 };
  const restock = await gql<{ restockProduct: { __typename: string } }>(
    'sql-test-restock',
    `mutation($sku: String!, $quantity: Int!) { restockProduct(sku: $sku, quantity: $quantity) { __typename } }`,
    restocked,
  );
  if (restock.restockProduct.__typename !== 'RestockProductSuccess') throw new Error(JSON.stringify(restock));

  // Idle: nothing left to deliver or retry, and the GPU's ProductAdded dead-lettered by catalogue-sync.
  await waitFor(
    async () => {
      const { rows } = await sql<{ busy: string; dead: string }>`
        select (select coalesce(sum(lag + retrying), 0) from outbox.consumer_lag)::text as busy,
               (select count(*) from outbox.dead_letters)::text as dead`.execute(database.db);
      return rows[0]?.busy === '0' && rows[0]?.dead === '1' ? true : undefined;
    },
    'consumers to be idle',
    60_000,
  );
  return {
    database,
    report,
    extraEvents: {
      OrderPlaced: 1,
      PaymentSucceeded: 1,
      InventoryReserved: 1,
      OrderCancelled: 1,
      PaymentRefunded: 1,
      ProductRestocked: 1,
    },
    cancelledReserved: { id, placedBy, cancelledBy, reason },
    restocked,
    gpuSku: restocked.sku,
  };
}

/** A tiny GraphQL-over-HTTP client sending `x-correlation-id`. */
function graphqlClient(url: string) {
  return async <T>(correlationId: string, query: string, variables: Record<string, unknown>): Promise<T> => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-correlation-id': correlationId },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: T; errors?: unknown };
    if (!body.data || body.errors) throw new Error(`GraphQL failed: ${JSON.stringify(body.errors)}`);
    return body.data;
  };
}
