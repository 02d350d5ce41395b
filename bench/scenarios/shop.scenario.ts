import type pg from 'pg';
import { waitUntil } from '../lib/engine.ts';
import { describeError, postGraphql, type Subscriber, subscribeOver } from '../lib/graphql-clients.ts';
import { type MemorySample, type ServiceProcess, startServiceProcess } from '../lib/service-process.ts';
import { mib, type Percentiles, percentiles, percentilesJson, round } from '../lib/stats.ts';
import { runClosedLoop, runOpenLoop } from '../lib/workload.ts';
import { formatCount, formatMs } from '../report/format.ts';
import type { LatencyBar, ScenarioModule, TableRow, ThroughputBar } from '../scenario.ts';

/** The events that end an order, and the status each ends it in. */
const FINAL_EVENTS: Readonly<Record<string, string>> = {
  OrderShipped: 'SHIPPED',
  PaymentFailed: 'PAYMENT_FAILED',
  OrderRejected: 'REJECTED',
  OrderCancelled: 'CANCELLED',
};

/** Catalogue size: enough SKUs that the inventory handler's row locks rarely meet. */
const PRODUCTS = 20;
/** Stock per product: no order in any run can run out (so orders end SHIPPED unless something is wrong). */
const STOCK = 10_000_000;

const ADD_PRODUCT = `mutation($input: AddProductInput!) {
  addProduct(input: $input) { __typename ... on Error { message } }
}`;
const PLACE_ORDER = `mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { __typename ... on PlaceOrderSuccess { order { id status } } ... on Error { message } }
}`;
const FINAL_EVENTS_SUBSCRIPTION = `subscription($filter: EventFilter) {
  events(fromBeginning: true, filter: $filter) { id type streamId }
}`;

interface PlacedOrder {
  /** The level's label, or 'warm-up'. */
  readonly level: string;
  /** performance.now() when the placeOrder response had arrived. */
  readonly respondedAt: number;
}

interface FinalEvent {
  readonly type: string;
  /** performance.now() when the event arrived on the subscription. */
  readonly at: number;
}

/** One `placeOrder` line: price 5.00–24.00, quantity 1–3; three lines stay far below the payment limit. */
function orderLines(n: number): Array<{ sku: string; quantity: number }> {
  const count = 1 + (n % 3);
  const first = (n * 7) % PRODUCTS;
  return Array.from({ length: count }, (_, i) => ({
    sku: skuOf((first + i * 3) % PRODUCTS),
    quantity: 1 + ((n + i) % 3),
  }));
}

/** In-flight placeOrder calls at most in the paced level (enough for its rate at any sane response time). */
const PACED_MAX_IN_FLIGHT = 8;
/** Target at half the top level's rate: commit → SHIPPED p99 at most this, ms. */
const HALF_LOAD_P99_MS = 100;

/** A paced level: an open loop at `rate` orders/s. */
function pacedLevel(
  label: string,
  rate: number,
  seconds: number,
  maxInFlight: number,
  target?: Level['target'],
): Level {
  return {
    label,
    kind: 'paced',
    concurrency: maxInFlight,
    ...(target ? { target } : {}),
    place: async (transaction) => {
      const run = await runOpenLoop({ rate, seconds, maxInFlight, transaction });
      return { completed: run.completed, failed: run.failed, seconds: run.seconds, behind: run.behind };
    },
  };
}

/** One measured level: how it places orders, with `transaction` placing one. */
interface Level {
  readonly label: string;
  readonly kind: 'paced' | 'closed';
  readonly concurrency: number;
  /** The issue-18 targets this level is checked against. */
  readonly target?: 'keeps pace' | 'half load';
  place(
    transaction: () => Promise<void>,
  ): Promise<{ completed: number; failed: number; seconds: number; behind?: number }>;
}

const skuOf = (index: number) => `BENCH-${String(index).padStart(2, '0')}`;

const latencyJson = (stats: Percentiles) => percentilesJson(stats, 1);

/**
 * Scenario 5: the shop's order flow through the GraphQL API, as a client sees it.
 *
 * `postbox serve` runs as a child process on the scenario's database with its defaults (API, relay and the
 * shop's consumers: payment → inventory → shipping, plus notifications; pool 20, worker concurrency 8).
 * The bench seeds a catalogue through `addProduct` (ample stock, prices that keep every order below the
 * payment limit, so orders normally end SHIPPED), then places orders with `placeOrder` mutations over HTTP
 * (fetch), level by level, each for the plan's seconds: first paced (an open loop at `pacedRate`, which the
 * handler chain can keep up with: the latency of the flow itself), then a closed loop at each concurrency
 * (as fast as the API answers: mutations/s = successful responses / seconds). Closed loops place orders
 * faster than the chain finishes them on a small machine, so their commit → SHIPPED is mostly queueing
 * behind the window's backlog, and grows with the window; the backlog at the window's end and the rate the
 * chain finished the level's orders at are recorded with it.
 *
 * Commit → SHIPPED is measured on the bench's clock: from the moment the placeOrder response arrived (the
 * order's transaction had committed before the response was written) to the moment its `OrderShipped`
 * arrived on one WebSocket `events` subscription filtered to the final event types. It is what a client
 * watching the order sees, and so includes the subscription's own hop (the API's log reader polls every
 * 50 ms while writers skip the wake-up NOTIFY because the relay is awake). The database-side hop breakdown
 * (`occurred_at` of OrderPlaced → PaymentSucceeded → InventoryReserved → OrderShipped) is recorded too;
 * `occurred_at` is the writing transaction's start, shared by every event of one delivery batch, so those
 * hops are approximate.
 *
 * After the top closed level, a paced level at half its placeOrder rate checks the issue-18 latency target
 * (commit → SHIPPED p99 ≤ 100 ms there); the top level itself checks that the chain finished orders at
 * least as fast as they were placed.
 *
 * Levels run one after the other on the same service: after each window the bench waits (at most
 * `catchUpSeconds`) until every order of the level is final, so the next level starts with no backlog.
 * Orders in other final states and orders still unfinished after the wait are counted; the database's
 * `shop.orders.status` is checked against what the subscription reported.
 */
export const shopScenario: ScenarioModule = {
  keys: ['graphql_shop'],
  title: 'Shop flow (GraphQL placeOrder)',
  steps: (plan) => 4 + plan.shop.concurrencies.length,
  async run({ server, plan, progress, log }) {
    const database = await server.createDatabase('graphql_shop');
    let service: ServiceProcess | undefined;
    let watcher: Subscriber | undefined;
    try {
      progress.status('starting postbox serve');
      service = await startServiceProcess({ databaseUrl: database.url, workers: true });
      const url = service.graphqlUrl;
      // The bench's own reads of the results (order statuses, hop times); ended when the database is dropped.
      const queries = database.pool(2);
      const memoryIdle = service.memory();
      for (let index = 0; index < PRODUCTS; index++) {
        const { addProduct } = await postGraphql<{ addProduct: { __typename: string; message?: string } }>(
          url,
          ADD_PRODUCT,
          {
            input: {
              sku: skuOf(index),
              name: `Bench product ${index}`,
              priceCents: 500 + index * 100,
              stock: STOCK,
            },
          },
        );
        if (addProduct.__typename !== 'AddProductSuccess') {
          throw new Error(`seeding ${skuOf(index)} failed: ${addProduct.message}`);
        }
      }

      // Final events of every order, as a client watching them sees them. From the beginning of the (fresh)
      // log, so it cannot miss an order placed before its subscription was live.
      const finals = new Map<string, FinalEvent>();
      let duplicateFinals = 0;
      let watcherError: unknown;
      let closing = false;
      watcher = subscribeOver(
        'ws',
        url,
        {
          query: FINAL_EVENTS_SUBSCRIPTION,
          variables: { filter: { streamType: 'order', types: Object.keys(FINAL_EVENTS) } },
        },
        {
          next(data) {
            const at = performance.now();
            const event = data.events as { type: string; streamId: string };
            if (finals.has(event.streamId)) duplicateFinals++;
            else finals.set(event.streamId, { type: event.type, at });
          },
          error(error) {
            if (!closing) watcherError ??= error;
          },
          complete() {
            if (!closing) watcherError ??= new Error('the final-events subscription completed');
          },
        },
      );
      progress.step('service up, catalogue seeded');

      const orders = new Map<string, PlacedOrder>();
      let counter = 0;
      const placeOrder = (level: PlacedOrder['level']) => async () => {
        const n = ++counter;
        const { placeOrder: result } = await postGraphql<{
          placeOrder: { __typename: string; order?: { id: string }; message?: string };
        }>(url, PLACE_ORDER, {
          input: { customerId: `customer-${n % 1000}`, idempotencyKey: `bench-${n}`, lines: orderLines(n) },
        });
        const respondedAt = performance.now();
        if (!result.order)
          throw new Error(`placeOrder refused: ${result.__typename} ${result.message ?? ''}`);
        orders.set(result.order.id, { level, respondedAt });
      };
      const idsOf = (level: PlacedOrder['level']) =>
        [...orders].filter(([, order]) => order.level === level).map(([id]) => id);
      const allFinal = (ids: readonly string[]) => ids.every((id) => finals.has(id));
      const checkWatcher = () => {
        if (watcherError)
          throw new Error(`the final-events subscription failed: ${describeError(watcherError)}`);
      };

      const firstLevel = plan.shop.concurrencies[0] ?? 8;
      progress.status(`warm-up at c=${firstLevel}`);
      await runClosedLoop(firstLevel, plan.shop.warmupSeconds, placeOrder('warm-up'));
      await waitUntil(
        () => allFinal(idsOf('warm-up')) || watcherError !== undefined,
        plan.shop.catchUpSeconds * 1000,
        () => 'warm-up orders to finish',
      );
      checkWatcher();
      progress.step('warm-up');

      const results: Record<string, unknown>[] = [];
      const rows: TableRow[] = [];
      const bars: ThroughputBar[] = [];
      const latency: LatencyBar[] = [];
      let failure: string | undefined;
      let peak: MemorySample | undefined;
      // The paced level first: commit → SHIPPED while the handler chain keeps up. Then the closed loops,
      // which place orders as fast as the API answers: faster than the chain finishes them on 2 cores, so
      // their latency is mostly time queued behind the window's backlog (recorded with it).
      const top = Math.max(...plan.shop.concurrencies);
      const levels: Level[] = [
        pacedLevel(
          `paced ${formatCount(plan.shop.pacedRate)}/s`,
          plan.shop.pacedRate,
          plan.shop.seconds,
          PACED_MAX_IN_FLIGHT,
        ),
        ...plan.shop.concurrencies.map(
          (concurrency): Level => ({
            label: `c=${concurrency}`,
            kind: 'closed',
            concurrency,
            ...(concurrency === top ? { target: 'keeps pace' as const } : {}),
            place: (transaction) => runClosedLoop(concurrency, plan.shop.seconds, transaction),
          }),
        ),
      ];
      for (const level of levels) {
        const { label } = level;
        progress.status(`${label}: placing orders`);
        const cpuBefore = service.cpuSeconds();
        const windowStart = performance.now();
        const loop = await level.place(placeOrder(label));
        const cpuAfter = service.cpuSeconds();
        const afterWindow = service.memory();
        const ids = idsOf(label);
        const finalAtWindowEnd = ids.filter((id) => finals.has(id)).length;

        progress.status(`${label}: waiting for ${formatCount(ids.length)} orders to finish`);
        const catchUpStarted = performance.now();
        await waitUntil(
          () => allFinal(ids) || watcherError !== undefined,
          plan.shop.catchUpSeconds * 1000,
        ).catch(() => undefined);
        const catchUpMs = performance.now() - catchUpStarted;
        checkWatcher();

        // The database's word on each order, against the subscription's. An order final in the table
        // commits its final event in the same transaction, so the subscription must report it too; it gets
        // a moment to do so (its reader polls every 50 ms).
        const statuses = await orderStatuses(queries, ids);
        const finalInDb = (id: string) => {
          const status = statuses.get(id);
          return status !== undefined && Object.values(FINAL_EVENTS).includes(status);
        };
        await waitUntil(() => ids.every((id) => !finalInDb(id) || finals.has(id)), 5000).catch(
          () => undefined,
        );
        let missedBySubscription = 0;
        let disagreeing = 0;
        const byStatus: Record<string, number> = {};
        const samples: number[] = [];
        for (const id of ids) {
          const final = finals.get(id);
          const status = statuses.get(id) ?? 'missing';
          byStatus[status] = (byStatus[status] ?? 0) + 1;
          if (finalInDb(id) && !final) missedBySubscription++;
          if (final && FINAL_EVENTS[final.type] !== status) disagreeing++;
          const placed = orders.get(id);
          if (final?.type === 'OrderShipped' && placed)
            samples.push(Math.max(0, final.at - placed.respondedAt));
        }
        const unfinished = ids.filter((id) => !finals.has(id)).length;
        const shipped = samples.length;
        const stats = percentiles(samples);
        const hops = await databaseHops(queries, ids);
        const memory = service.memory();
        if (memory && (!peak || memory.peakRssBytes > peak.peakRssBytes)) peak = memory;
        if (missedBySubscription > 0 || disagreeing > 0) {
          failure ??=
            `${label}: ${missedBySubscription} orders final in the database never reported on the ` +
            `subscription, ${disagreeing} reported with another final state`;
        }
        const mutationRate = loop.completed / loop.seconds;
        // How fast the chain finished the level's orders: from the window's start to the last final event.
        const lastFinalAt = Math.max(windowStart, ...ids.map((id) => finals.get(id)?.at ?? windowStart));
        const finishedRate = (ids.length - unfinished) / Math.max(0.001, (lastFinalAt - windowStart) / 1000);
        const backlog = ids.length - finalAtWindowEnd;
        // The chain keeps pace at the top level when it finished orders at least as fast as they were
        // placed; at half that rate (the level added next) commit → SHIPPED p99 must stay within the target.
        const targetMet =
          level.target === 'keeps pace'
            ? unfinished === 0 && finishedRate >= mutationRate
            : level.target === 'half load'
              ? unfinished === 0 && stats.p99 <= HALF_LOAD_P99_MS
              : undefined;
        if (level.target === 'keeps pace') {
          const half = Math.max(1, Math.round(mutationRate / 2));
          levels.push(
            pacedLevel(
              `paced ${formatCount(half)}/s (½ c=${level.concurrency})`,
              half,
              plan.shop.seconds,
              Math.max(PACED_MAX_IN_FLIGHT, Math.ceil(level.concurrency / 2)),
              'half load',
            ),
          );
        }
        const serverCpuShare =
          cpuBefore !== undefined && cpuAfter !== undefined
            ? (cpuAfter - cpuBefore) / loop.seconds
            : undefined;
        log(
          `graphql_shop ${label}: ${formatCount(mutationRate)} placeOrder/s, ${shipped}/${ids.length} shipped ` +
            `(finished ${formatCount(finishedRate)}/s), p50 ${formatMs(stats.p50)} ms p99 ${formatMs(stats.p99)} ms, ` +
            `backlog ${backlog} at window end, catch-up ${formatCount(catchUpMs)} ms`,
        );
        results.push({
          label,
          load: level.kind === 'paced' ? 'open loop' : 'closed loop',
          ...(level.kind === 'paced' ? { offeredRate: plan.shop.pacedRate } : {}),
          concurrency: level.concurrency,
          seconds: round(loop.seconds, 2),
          placed: loop.completed,
          failedRequests: loop.failed,
          ...(loop.behind !== undefined ? { producerBehind: loop.behind } : {}),
          mutationsPerSecond: round(mutationRate, 1),
          finishedPerSecond: round(finishedRate, 1),
          finalAtWindowEnd,
          backlogAtWindowEnd: backlog,
          catchUpMs: round(catchUpMs, 0),
          ...(level.target ? { target: level.target, targetMet } : {}),
          byStatus,
          shipped,
          otherFinal: ids.length - shipped - unfinished,
          unfinished,
          missedBySubscription,
          subscriptionDisagrees: disagreeing,
          responseToShippedMs: latencyJson(stats),
          databaseHopsMs: hops,
          serverCpuShare: serverCpuShare === undefined ? null : round(serverCpuShare, 2),
          serverRssMiB: { afterWindow: mib(afterWindow?.rssBytes), afterCatchUp: mib(memory?.rssBytes) },
        });
        const others = ids.length - shipped - unfinished;
        rows.push(
          {
            scenario: `5 Shop placeOrder ${label}`,
            figure: 'mutations/s',
            median: formatCount(mutationRate),
            spread:
              `${formatCount(loop.completed)} in ${loop.seconds.toFixed(1)} s` +
              (loop.failed ? `, ${loop.failed} failed` : ''),
            // A paced level's orders finish at the rate they are placed; only a closed loop shows the chain's.
            ratio: [
              level.kind === 'closed' ? `chain finished ${formatCount(finishedRate)}/s` : '',
              serverCpuShare === undefined ? '' : `server ${Math.round(serverCpuShare * 100)}% CPU`,
            ]
              .filter(Boolean)
              .join(' · '),
            target: level.target === 'keeps pace' ? `finished ≥ placed ${targetMet ? '✓' : '✗'}` : '',
          },
          {
            scenario: `5 Shop →SHIPPED ${label}`,
            figure: 'response→shipped ms',
            median: `p50 ${formatMs(stats.p50)}`,
            spread: `p95 ${formatMs(stats.p95)} · p99 ${formatMs(stats.p99)} · max ${formatMs(stats.max)}`,
            ratio:
              `${formatCount(shipped)} shipped, backlog ${formatCount(backlog)}` +
              (others ? `, ${formatCount(others)} other` : '') +
              (unfinished ? `, ${formatCount(unfinished)} unfinished` : ''),
            target: level.target === 'half load' ? `p99 ≤ ${HALF_LOAD_P99_MS} ${targetMet ? '✓' : '✗'}` : '',
          },
        );
        bars.push({
          group: 'GraphQL placeOrder over HTTP',
          label: `placeOrder ${label}`,
          unit: 'mutations/s',
          median: mutationRate,
          min: mutationRate,
          max: mutationRate,
        });
        latency.push({ label: `placeOrder→SHIPPED ${label}`, ...stats });
        progress.step(`${label}: ${formatCount(mutationRate)}/s, p99 ${formatMs(stats.p99)} ms`);
      }

      closing = true;
      await watcher.close();
      watcher = undefined;
      // Stopped here rather than in `finally` so its shutdown (and anything it logs then) is in the results.
      const exit = await service.stop();
      const logs = service.logSummary();
      if (logs.errors > 0)
        log(`graphql_shop: the service logged ${logs.errors} errors: ${logs.errorLines[0]}`);
      return {
        results: {
          graphql_shop: {
            status: failure ? 'failed' : 'ok',
            ...(failure ? { error: failure } : {}),
            measure:
              'bench clock: placeOrder HTTP response received → OrderShipped received on a WebSocket `events` ' +
              'subscription (final event types), per order placed in the window; includes the subscription hop',
            databaseHopsMeasure:
              'database clock: occurred_at (writing transaction start; shared by a delivery batch) of ' +
              'OrderPlaced → PaymentSucceeded → InventoryReserved → OrderShipped, shipped orders only',
            service: {
              command: 'postbox serve (API, relay and shop consumers), child process',
              settings: service.settings,
              defaults: 'pool 20, worker concurrency 8, relay poll 2000 ms, subscription feed poll 50 ms',
            },
            catalogue: { products: PRODUCTS, stock: STOCK, priceCents: '500–2400', linesPerOrder: '1–3' },
            warmupSeconds: plan.shop.warmupSeconds,
            catchUpLimitSeconds: plan.shop.catchUpSeconds,
            levels: results,
            duplicateFinalEvents: duplicateFinals,
            serverMemoryMiB: {
              idle: mib(memoryIdle?.rssBytes),
              peak: mib(peak?.peakRssBytes),
            },
            serverLog: logs,
            serverProcess: { startMs: round(service.startMs, 0), ...exit, stopMs: round(exit.stopMs, 0) },
          },
        },
        rows,
        bars,
        latency,
      };
    } finally {
      await watcher?.close().catch(() => undefined);
      if (service) {
        const exit = await service.stop();
        if (exit.killed) log(`graphql_shop: the service did not stop on SIGTERM within 15 s and was killed`);
      }
      await database.drop();
    }
  },
};

/** `shop.orders.status` of each order. */
async function orderStatuses(pool: pg.Pool, ids: readonly string[]): Promise<Map<string, string>> {
  const { rows } = await pool.query<{ id: string; status: string }>(
    'select id::text, status from shop.orders where id = any($1::uuid[])',
    [ids],
  );
  return new Map(rows.map((row) => [row.id, row.status]));
}

/** Percentiles of each hop of the handler chain on the database's clock, for the orders that shipped. */
async function databaseHops(
  pool: pg.Pool,
  ids: readonly string[],
): Promise<Record<string, ReturnType<typeof latencyJson>>> {
  const { rows } = await pool.query<{ placed: number; paid: number; reserved: number; shipped: number }>(
    `select extract(epoch from max(occurred_at) filter (where type = 'OrderPlaced')) * 1000 as placed,
            extract(epoch from max(occurred_at) filter (where type = 'PaymentSucceeded')) * 1000 as paid,
            extract(epoch from max(occurred_at) filter (where type = 'InventoryReserved')) * 1000 as reserved,
            extract(epoch from max(occurred_at) filter (where type = 'OrderShipped')) * 1000 as shipped
       from outbox.events
      where stream_type = 'order' and stream_id = any($1::text[])
        and type in ('OrderPlaced', 'PaymentSucceeded', 'InventoryReserved', 'OrderShipped')
      group by stream_id
     having count(*) filter (where type = 'OrderShipped') > 0`,
    [ids],
  );
  const hop = (from: 'placed' | 'paid' | 'reserved', to: 'paid' | 'reserved' | 'shipped') =>
    latencyJson(percentiles(rows.map((row) => Math.max(0, Number(row[to]) - Number(row[from])))));
  return {
    placedToPaid: hop('placed', 'paid'),
    paidToReserved: hop('paid', 'reserved'),
    reservedToShipped: hop('reserved', 'shipped'),
    placedToShipped: hop('placed', 'shipped'),
  };
}
