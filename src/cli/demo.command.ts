import { randomBytes } from 'node:crypto';
import { type Command, InvalidArgumentError } from 'commander';
import { createClient } from 'graphql-ws';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import WebSocket from 'ws';
import { createApiKey, revokeApiKey } from '../auth/api-keys.ts';
import { loadConfig } from '../config/config.ts';
import type { Database } from '../db/database.ts';
import { createLogger } from '../logger.ts';
import { type Service, startService } from '../main.ts';

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Orders to place. Default `100`. */
  readonly orders: number;
  /** placeOrder calls in flight at once. Default `10`. */
  readonly concurrency: number;
  /** GraphQL endpoint of a running service; omitted: start one in this process. */
  readonly url?: string | undefined;
  /** API key (or JWT) for a service with auth on: sent as `Authorization: Bearer`, and on the WebSocket. */
  readonly apiKey?: string | undefined;
  /** Give up waiting for orders to finish after this long, ms. Default `120000`. */
  readonly timeoutMs?: number;
  /** Share of orders the demo tries to cancel right after placing them, 0..1. Default `0.08`. */
  readonly cancelShare?: number;
  /** Where the report goes. Default stdout. */
  readonly out?: NodeJS.WritableStream;
  /** Where the progress bar goes. Default stderr. */
  readonly progress?: NodeJS.WritableStream & { isTTY?: boolean };
}

/** What the demo measured (also printed as a table). */
export interface DemoReport {
  readonly run: string;
  readonly placed: number;
  readonly refused: number;
  readonly statuses: Record<string, number>;
  readonly eventTypes: Record<string, number>;
  readonly latencyMs: { p50: number; p95: number; p99: number; max: number };
  readonly cancels: { requested: number; cancelled: number; tooLate: number };
  readonly unfinished: number;
  readonly consumers: ReadonlyArray<{
    name: string;
    lag: number;
    retrying: number;
    deadLetters: number;
    handled: number;
  }>;
}

/** Event types that end an order, and the status they end it in. */
const FINAL_EVENTS: Record<string, string> = {
  OrderShipped: 'SHIPPED',
  PaymentFailed: 'PAYMENT_FAILED',
  OrderRejected: 'REJECTED',
  OrderCancelled: 'CANCELLED',
};

const STATUS_ORDER = ['SHIPPED', 'PAYMENT_FAILED', 'REJECTED', 'CANCELLED', 'unfinished'];

/** `postbox demo`: see {@link runDemo}. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'seed a catalogue, place orders through the GraphQL API while subscribed to the event log, and report',
    )
    .option('--orders <n>', 'orders to place', positiveInteger, 100)
    .option('--concurrency <c>', 'placeOrder calls in flight at once', positiveInteger, 10)
    .option('--url <url>', 'GraphQL endpoint of a running service (default: start one in this process)')
    .option('--timeout <seconds>', 'give up waiting for orders after this long', positiveInteger, 120)
    .option(
      '--api-key <key>',
      'API key (admin scope: the demo also seeds products) for a service with auth on',
    )
    .action(
      async (options: {
        orders: number;
        concurrency: number;
        url?: string;
        timeout: number;
        apiKey?: string;
      }) => {
        await runDemo({
          orders: options.orders,
          concurrency: options.concurrency,
          url: options.url,
          apiKey: options.apiKey,
          timeoutMs: options.timeout * 1000,
        });
      },
    );
}

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('must be a whole number ≥ 1');
  return parsed;
}

/**
 * The demo: subscribes to the event log over WebSocket (from the current head), seeds a catalogue, places
 * orders through the GraphQL API with bounded concurrency (cancelling a few at once), waits until every order
 * is final — as seen on the subscription — and prints orders per final status, events per type, and
 * end-to-end latency (placeOrder response → the order's final event arriving on the subscription).
 *
 * Without `url` it starts the whole service in this process (embedded Postgres unless `DATABASE_URL`).
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const out = options.out ?? process.stdout;
  const progressOut = options.progress ?? process.stderr;
  let service: Service | undefined;
  let url = options.url;
  let apiKey = options.apiKey;
  let temporaryKey: string | undefined;
  if (!url) {
    const config = loadConfig();
    try {
      service = await startService(
        { ...config, host: '127.0.0.1', port: 0, runApi: true, runWorkers: true },
        createLogger({ logLevel: 'warn', nodeEnv: config.nodeEnv }),
      );
    } catch (error) {
      throw new Error(
        `could not start the service in this process (${(error as Error).message}). ` +
          'If `postbox serve` is running, point the demo at it: postbox demo --url http://127.0.0.1:4000/graphql',
      );
    }
    url = service.apiUrl as string;
    if (config.auth && !apiKey) {
      // Auth is on (the default against a DATABASE_URL): the demo is the service's own client here, so it
      // makes an admin key for the run (it seeds products) and revokes it when done.
      const key = await onDatabase(service.connectionString, (db) =>
        createApiKey(db, { name: `postbox demo ${new Date().toISOString()}`, scopes: ['admin'] }),
      );
      apiKey = key.key;
      temporaryKey = key.id;
    }
  }
  const wsClient = createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    retryAttempts: 3,
    ...(apiKey ? { connectionParams: { authorization: `Bearer ${apiKey}` } } : {}),
  });
  try {
    const report = await drive(url, wsClient, { ...options, apiKey }, progressOut);
    out.write(renderReport(report, { url, inProcess: service !== undefined, options }));
    return report;
  } finally {
    await wsClient.dispose();
    if (service && temporaryKey) {
      const id = temporaryKey;
      await onDatabase(service.connectionString, (db) => revokeApiKey(db, id));
    }
    await service?.stop();
  }
}

/** Runs `work` on a one-connection Kysely of its own (the service's pool is not exposed). */
async function onDatabase<T>(
  connectionString: string,
  work: (db: Kysely<Database>) => Promise<T>,
): Promise<T> {
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString, max: 1 }) }),
  });
  try {
    return await work(db);
  } finally {
    await db.destroy();
  }
}

interface Tracked {
  placedAt: number;
  finalAt?: number;
  status?: string;
}

async function drive(
  url: string,
  wsClient: ReturnType<typeof createClient>,
  options: DemoOptions,
  progressOut: NodeJS.WritableStream & { isTTY?: boolean },
): Promise<DemoReport> {
  const run = randomBytes(3).toString('hex');
  const prefix = `demo-${run}-`;
  const gql = graphqlOver(url, options.apiKey);
  const orders = new Map<string, Tracked>();
  const finals = new Map<string, { status: string; at: number }>();
  const eventTypes: Record<string, number> = {};
  let lastEventAt = Date.now();
  const progress = new ProgressBar(progressOut, options.orders);

  // 1. Subscribe from the log's current head, so the run's events are all seen, and only those.
  const head = (await gql<{ logHead: string | null }>('{ logHead }')).logHead;
  let subscriptionError: unknown;
  const unsubscribe = wsClient.subscribe(
    {
      query: `subscription($after: String, $fromBeginning: Boolean) {
        events(after: $after, fromBeginning: $fromBeginning) { type streamType streamId correlationId }
      }`,
      variables: { after: head, fromBeginning: head === null },
    },
    {
      next: (result) => {
        const event = (result.data as { events?: Record<string, string | null> } | undefined)?.events;
        if (!event?.correlationId?.startsWith(prefix)) return;
        lastEventAt = Date.now();
        const type = event.type as string;
        eventTypes[type] = (eventTypes[type] ?? 0) + 1;
        const status = FINAL_EVENTS[type];
        if (status && event.streamType === 'order' && !finals.has(event.streamId as string)) {
          finals.set(event.streamId as string, { status, at: performance.now() });
          progress.update(finals.size);
        }
      },
      error: (error) => {
        subscriptionError = error;
      },
      complete: () => undefined,
    },
  );

  try {
    // 2. A catalogue of this run's own (so reruns start from known stock).
    const catalogue = buildCatalogue(run, options.orders);
    for (const product of catalogue) {
      const result = await gql<{ addProduct: { __typename: string; message?: string } }>(
        `mutation($input: AddProductInput!) { addProduct(input: $input) { __typename ... on Error { message } } }`,
        { input: product.input },
        `${prefix}seed`,
      );
      if (result.addProduct.__typename !== 'AddProductSuccess') {
        throw new Error(`seeding ${product.input.sku} failed: ${result.addProduct.message}`);
      }
    }

    // 3. Orders, `concurrency` at a time; a few cancelled right away (racing the handlers).
    let next = 0;
    let refused = 0;
    const cancels = { requested: 0, cancelled: 0, tooLate: 0 };
    const cancelShare = options.cancelShare ?? 0.08;
    const worker = async () => {
      for (let i = next++; i < options.orders; i = next++) {
        const correlationId = `${prefix}${i}`;
        const result = await gql<{ placeOrder: { __typename: string; order?: { id: string } } }>(
          `mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
            __typename ... on PlaceOrderSuccess { order { id } } } }`,
          {
            input: {
              customerId: `customer-${1 + Math.floor(Math.random() * 25)}`,
              idempotencyKey: correlationId,
              lines: randomLines(catalogue),
            },
          },
          correlationId,
        );
        const id = result.placeOrder.order?.id;
        if (!id) {
          refused++;
          continue;
        }
        orders.set(id, { placedAt: performance.now() });
        progress.placed(orders.size);
        if (Math.random() < cancelShare) {
          cancels.requested++;
          const cancel = await gql<{ cancelOrder: { __typename: string } }>(
            `mutation($id: ID!) { cancelOrder(orderId: $id, reason: "changed my mind") { __typename } }`,
            { id },
            correlationId,
          );
          if (cancel.cancelOrder.__typename === 'CancelOrderSuccess') cancels.cancelled++;
          else cancels.tooLate++;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency, options.orders) }, worker));

    // 4. Until every order is final, as seen on the subscription.
    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    while ([...orders.keys()].some((id) => !finals.has(id)) && Date.now() < deadline) {
      if (subscriptionError) throw new Error(`the subscription failed: ${describe(subscriptionError)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Events committed together with an order's final one (e.g. PaymentRefunded) may trail it briefly.
    while (Date.now() - lastEventAt < 300) await new Promise((resolve) => setTimeout(resolve, 50));
    progress.done();

    const statuses: Record<string, number> = {};
    const latencies: number[] = [];
    let unfinished = 0;
    for (const [id, order] of orders) {
      const final = finals.get(id);
      if (!final) {
        unfinished++;
        statuses.unfinished = (statuses.unfinished ?? 0) + 1;
        continue;
      }
      statuses[final.status] = (statuses[final.status] ?? 0) + 1;
      latencies.push(Math.max(0, final.at - order.placedAt));
    }
    latencies.sort((a, b) => a - b);
    const { consumers } = await gql<{ consumers: DemoReport['consumers'] }>(
      '{ consumers { name lag retrying deadLetters handled } }',
    );
    return {
      consumers,
      run,
      placed: orders.size,
      refused,
      statuses,
      eventTypes,
      latencyMs: {
        p50: percentile(latencies, 50),
        p95: percentile(latencies, 95),
        p99: percentile(latencies, 99),
        max: latencies.at(-1) ?? 0,
      },
      cancels,
      unfinished,
    };
  } finally {
    unsubscribe();
    progress.done();
  }
}

interface CatalogueItem {
  readonly input: { sku: string; name: string; priceCents: number; stock: number };
  /** Relative chance of appearing on an order. */
  readonly weight: number;
  readonly maxQuantity: number;
}

/**
 * Ample stock for the everyday items; a laptop that, four at a time, is above the default payment limit
 * (PAYMENT_FAILED); and a scarce GPU that runs out part-way (REJECTED, StockDepleted).
 */
function buildCatalogue(run: string, orders: number): CatalogueItem[] {
  const plenty = orders * 3 + 10;
  const item = (
    sku: string,
    name: string,
    priceCents: number,
    stock: number,
    weight: number,
    maxQuantity: number,
  ) => ({
    input: { sku: `${sku}-${run}`, name, priceCents, stock },
    weight,
    maxQuantity,
  });
  return [
    item('KEYB', 'Mechanical keyboard', 8_900, plenty, 5, 2),
    item('MOUSE', 'Wireless mouse', 2_900, plenty, 5, 2),
    item('CABLE', 'USB-C cable', 900, plenty, 4, 3),
    item('MONITOR', '27" 4K monitor', 32_900, plenty, 3, 2),
    item('LAPTOP', 'Laptop Pro 16', 259_900, plenty, 1.5, 4),
    item('GPU', 'Limited-edition GPU', 149_900, Math.max(2, Math.round(orders * 0.08)), 2, 2),
  ];
}

function randomLines(catalogue: readonly CatalogueItem[]): Array<{ sku: string; quantity: number }> {
  const count = 1 + Math.floor(Math.random() * 3);
  const chosen = new Set<CatalogueItem>();
  const total = catalogue.reduce((sum, item) => sum + item.weight, 0);
  while (chosen.size < count) {
    let pick = Math.random() * total;
    for (const item of catalogue) {
      pick -= item.weight;
      if (pick <= 0) {
        chosen.add(item);
        break;
      }
    }
  }
  return [...chosen].map((item) => ({
    sku: item.input.sku,
    quantity: 1 + Math.floor(Math.random() * item.maxQuantity),
  }));
}

/** A tiny GraphQL-over-HTTP client. */
function graphqlOver(url: string, apiKey?: string) {
  return async <T>(
    query: string,
    variables?: Record<string, unknown>,
    correlationId?: string,
  ): Promise<T> => {
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
        ...(correlationId ? { 'x-correlation-id': correlationId } : {}),
      },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: T; errors?: Array<{ message: string }> };
    if (body.errors?.length || !body.data) {
      throw new Error(
        `GraphQL request failed (${response.status}): ${body.errors?.map((e) => e.message).join('; ')}`,
      );
    }
    return body.data;
  };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  const close = error as { code?: number; reason?: string };
  if (typeof close?.code === 'number') return `connection closed (${close.code} ${close.reason ?? ''})`;
  return JSON.stringify(error);
}

/** A one-line progress bar on a terminal; a line per quarter otherwise. */
class ProgressBar {
  private readonly stream: NodeJS.WritableStream & { isTTY?: boolean };
  private readonly total: number;
  private final = 0;
  private placedCount = 0;
  private lastQuarter = 0;
  private finished = false;
  private readonly started = Date.now();
  private lastDraw = 0;

  constructor(stream: NodeJS.WritableStream & { isTTY?: boolean }, total: number) {
    this.stream = stream;
    this.total = total;
  }

  placed(count: number): void {
    this.placedCount = count;
    this.draw();
  }

  update(final: number): void {
    this.final = final;
    this.draw();
  }

  done(): void {
    if (this.finished) return;
    this.finished = true;
    this.draw(true);
    if (this.stream.isTTY) this.stream.write('\n');
  }

  private draw(force = false): void {
    if (this.finished && !force) return;
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1);
    if (!this.stream.isTTY) {
      const quarter = Math.floor((this.final / this.total) * 4);
      if (quarter > this.lastQuarter || (force && quarter < 4)) {
        this.lastQuarter = quarter;
        this.stream.write(
          `  ${this.final}/${this.total} orders final (${this.placedCount} placed, ${seconds}s)\n`,
        );
      }
      return;
    }
    if (!force && Date.now() - this.lastDraw < 50) return;
    this.lastDraw = Date.now();
    const width = 30;
    const filled = Math.round((this.final / this.total) * width);
    const placedMark = Math.max(filled, Math.round((this.placedCount / this.total) * width));
    const bar = '█'.repeat(filled) + '▒'.repeat(placedMark - filled) + '░'.repeat(width - placedMark);
    this.stream.write(
      `\r  ${bar} ${String(this.final).padStart(String(this.total).length)}/${this.total} final · ${this.placedCount} placed · ${seconds}s `,
    );
  }
}

function renderReport(
  report: DemoReport,
  context: { url: string; inProcess: boolean; options: DemoOptions },
): string {
  const lines: string[] = [];
  const total = report.placed;
  const pct = (n: number) => (total ? `${((n / total) * 100).toFixed(1)}%` : '-');
  lines.push('');
  lines.push(
    `Postbox demo · run ${report.run} · ${report.placed} orders placed, concurrency ${context.options.concurrency}` +
      (context.inProcess ? ' · service in this process' : ` · ${context.url}`),
  );
  lines.push('');
  lines.push('Orders by final status');
  const statuses = [
    ...STATUS_ORDER.filter((status) => report.statuses[status]),
    ...Object.keys(report.statuses).filter((status) => !STATUS_ORDER.includes(status)),
  ];
  for (const status of statuses) {
    const n = report.statuses[status] ?? 0;
    lines.push(`  ${status.padEnd(18)}${String(n).padStart(6)}  ${pct(n).padStart(6)}`);
  }
  lines.push(`  ${'total'.padEnd(18)}${String(total).padStart(6)}`);
  if (report.cancels.requested > 0) {
    lines.push(
      `  (cancel requests: ${report.cancels.requested} sent, ${report.cancels.cancelled} cancelled, ` +
        `${report.cancels.tooLate} too late)`,
    );
  }
  if (report.refused > 0) lines.push(`  (${report.refused} placeOrder calls refused)`);
  lines.push('');
  lines.push('Events by type (this run, as received on the subscription)');
  const types = Object.entries(report.eventTypes).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  for (const [type, n] of types) lines.push(`  ${type.padEnd(18)}${String(n).padStart(6)}`);
  lines.push(`  ${'total'.padEnd(18)}${String(types.reduce((sum, [, n]) => sum + n, 0)).padStart(6)}`);
  lines.push('');
  lines.push("End-to-end latency (placeOrder response → the order's final event on the subscription)");
  const ms = (value: number) => `${Math.round(value)} ms`;
  lines.push(
    `  p50 ${ms(report.latencyMs.p50)}   p95 ${ms(report.latencyMs.p95)}   p99 ${ms(report.latencyMs.p99)}   ` +
      `max ${ms(report.latencyMs.max)}`,
  );
  if (report.unfinished > 0) {
    lines.push(`  ${report.unfinished} orders were not final before the timeout: see \`consumers\` below.`);
  }
  lines.push('');
  lines.push('Consumers');
  lines.push(
    `  ${'name'.padEnd(16)}${'lag'.padStart(6)}${'retrying'.padStart(10)}${'dead letters'.padStart(14)}${'handled'.padStart(10)}`,
  );
  for (const consumer of report.consumers) {
    lines.push(
      `  ${consumer.name.padEnd(16)}${String(consumer.lag).padStart(6)}${String(consumer.retrying).padStart(10)}` +
        `${String(consumer.deadLetters).padStart(14)}${String(consumer.handled).padStart(10)}`,
    );
  }
  lines.push('');
  lines.push('Where to look next');
  const graphiql = context.inProcess ? 'http://127.0.0.1:4000/graphql (after `npm start`)' : context.url;
  lines.push(`  GraphiQL          ${graphiql}`);
  lines.push(`  Consumer health   { consumers { name lag retrying deadLetters handled } }`);
  lines.push(
    `  One order         { order(id: "…") { status events { type payload } notifications { message } } }`,
  );
  lines.push(
    `  Order 0's events  subscription { events(fromBeginning: true, filter: { correlationId: "demo-${report.run}-0" }) { type streamId } }`,
  );
  lines.push(`  In SQL            select status, count(*) from shop.orders group by status;`);
  lines.push(`                    select type, count(*) from outbox.events group by type order by 2 desc;`);
  lines.push('');
  return `${lines.join('\n')}\n`;
}
