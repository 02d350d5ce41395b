import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { createDb } from '../../src/engine/db/database.ts';
import { waitUntil } from '../lib/engine.ts';
import { describeError, type Subscriber, subscribeOver, type Transport } from '../lib/graphql-clients.ts';
import { type MemorySample, type ServiceProcess, startServiceProcess } from '../lib/service-process.ts';
import { mib, type Percentiles, percentiles, percentilesJson, round } from '../lib/stats.ts';
import { appendOrderTransaction, type OpenLoopResult, runOpenLoop } from '../lib/workload.ts';
import { formatCount, formatMs, formatTarget } from '../report/format.ts';
import type { LatencyBar, ScenarioModule, TableRow, TargetCheck } from '../scenario.ts';
import { openConnections } from './append.scenario.ts';

/** Commit → client receipt, p99, with the plan's subscribers (issue 18's target: 1,000 at 50 events/s). */
const P99_TARGET_MS = 50;
/** Producer connections: the write rate is low, a few transactions in flight at most. */
const PRODUCERS = 4;
/** How long every subscriber gets to receive the probe event (proving its subscription is live). */
const DELIVERY_TIMEOUT_MS = 30_000;
/** After a window: an event not received by now, with nothing at all arriving meanwhile, is missing. */
const STALL_TIMEOUT_MS = 10_000;
/** After a window: the longest wait for a server that fell behind to deliver everything. */
const MAX_DRAIN_MS = 120_000;
/** Quiet time after the last expected event, for a duplicate to show up. */
const DUPLICATE_WATCH_MS = 500;

/** What a client asks for: the fields a UI showing the log would (payload included). */
const EVENTS_SUBSCRIPTION = `subscription {
  events(fromBeginning: true) { id cursor type streamType streamId streamVersion occurredAt payload }
}`;

/** One subscriber's record: what it received, in order, and when. */
interface SubscriberRecord {
  readonly transport: Transport;
  /** Event ids in arrival order (duplicates included). */
  readonly sequence: string[];
  /** performance.now() of each id's first arrival. */
  readonly receivedAt: Map<string, number>;
  errors: unknown[];
  completed: boolean;
  connection?: Subscriber;
}

/** One measured rate, as recorded before the figures are computed. */
interface Level {
  readonly rate: number;
  readonly load: OpenLoopResult;
  /** Commit time of each event of the window. */
  readonly committedAt: ReadonlyMap<string, number>;
  readonly peakRss: number;
  /** (Events committed so far × subscribers) − receipts, when the producer stopped. */
  readonly owedAtWindowEnd: number;
  /** Until every subscriber had every event (or delivery stalled). */
  readonly drainMs: number;
  readonly serverCpuShare: number | undefined;
}

/** How one subscriber's stream compares with the log. */
interface DeliveryCheck {
  /** Events of the log it never received. */
  readonly missing: number;
  /** Arrivals of an id it had already received. */
  readonly duplicates: number;
  /** Ids it received that are not in the log. */
  readonly unexpected: number;
  /** Arrivals earlier in the log than one received before them. */
  readonly outOfOrder: number;
}

const latencyJson = (stats: Percentiles) => percentilesJson(stats, 2);

/**
 * Scenario 6: the plan's SSE + WebSocket subscribers (full run 500 + 500, `--quick` 100 + 100) of the `events`
 * subscription, at a steady write rate.
 *
 * `postbox serve --no-workers` (API only: with no relay running, every write sends the wake-up NOTIFY the
 * API's log reader listens to) runs as a child process, so the clients' work stays off its event loop
 * and its memory can be read on its own. Each subscriber is an independent client on its own connection
 * (graphql-ws over `ws`, or graphql-sse in distinct-connections mode), subscribed `fromBeginning` on the
 * fresh log, so each must receive exactly the whole log, in log order.
 *
 * All connect first; one probe event must reach every one of them (proving they are live) before the
 * warm-up. The bench's producer then appends `OrderPlaced` events (one per transaction, `appendEvents` in
 * the bench process) on an open-loop schedule at each of the plan's rates in turn, stamping
 * `performance.now()` when each COMMIT resolved; every subscriber stamps each arrival on the same clock.
 * Latency = arrival − commit, over every (subscriber, event) pair of events committed in the window. The
 * clients share the bench's one event loop, so a busy loop adds to the figures: they are an upper bound of
 * what the server adds. Each rate is a load the API process either sustains (latency is the fan-out's) or
 * not (the delivery backlog grows through the window, and latency with it): the receipts still owed when
 * the producer stops, and how long they took to arrive, tell which. The next rate starts once every
 * subscriber has everything.
 *
 * Afterwards every subscriber's stream is compared with the log (`order by log_xid, position`): any missing,
 * duplicate, unexpected or out-of-order event, or a subscription error, fails the scenario — it is a
 * correctness problem, not a statistic. (An event counts as missing once nothing at all has arrived for
 * STALL_TIMEOUT_MS: a server that is behind but delivering is slow, not lossy.) Memory is the service's
 * `VmRSS` when idle, with the subscribers connected, its peak during each window (sampled every 250 ms), and
 * `VmHWM`.
 */
export const subscriptionsScenario: ScenarioModule = {
  keys: ['subscriptions'],
  title: 'Subscriptions (SSE + WebSocket)',
  steps: (plan) => 3 + plan.subscriptions.rates.length,
  async run({ server, plan, progress, log }) {
    const settings = plan.subscriptions;
    const database = await server.createDatabase('subscriptions');
    let service: ServiceProcess | undefined;
    const records: SubscriberRecord[] = [];
    let closing = false;
    let sampler: NodeJS.Timeout | undefined;
    try {
      progress.status('starting postbox serve --no-workers');
      service = await startServiceProcess({ databaseUrl: database.url, workers: false });
      const url = service.graphqlUrl;
      const producerPool = database.pool(PRODUCERS);
      await openConnections(producerPool, PRODUCERS);
      const producerDb = createDb(producerPool);
      const memoryIdle = service.memory();

      // Interleaved, so neither transport is systematically connected (and served) first.
      const total = settings.sse + settings.websocket;
      for (let i = 0; i < total; i++) {
        const sseLeft = settings.sse - records.filter((r) => r.transport === 'sse').length;
        const wsLeft = settings.websocket - records.filter((r) => r.transport === 'ws').length;
        const transport: Transport = wsLeft === 0 || (sseLeft > 0 && i % 2 === 0) ? 'sse' : 'ws';
        const record: SubscriberRecord = {
          transport,
          sequence: [],
          receivedAt: new Map(),
          errors: [],
          completed: false,
        };
        record.connection = subscribeOver(
          transport,
          url,
          { query: EVENTS_SUBSCRIPTION },
          {
            next(data) {
              const at = performance.now();
              const id = (data.events as { id: string }).id;
              record.sequence.push(id);
              if (!record.receivedAt.has(id)) record.receivedAt.set(id, at);
            },
            error(error) {
              if (!closing) record.errors.push(error);
            },
            complete() {
              if (!closing) record.completed = true;
            },
          },
        );
        records.push(record);
      }

      const committedIds: string[] = [];
      /** Commit times of the window being measured (none outside the windows). */
      let measuredWindow: Map<string, number> | undefined;
      const onCommitted = (id: string) => {
        committedIds.push(id);
        measuredWindow?.set(id, performance.now());
      };
      const transaction = () => appendOrderTransaction(producerDb, onCommitted);
      const failedSubscribers = () => records.filter((r) => r.errors.length > 0 || r.completed).length;
      const reached = (id: string) => records.filter((r) => r.receivedAt.has(id)).length;

      // Connected means nothing until the server's feed is attached: one probe event must reach everyone.
      progress.status(`connecting ${total} subscribers`);
      const connectStarted = performance.now();
      await transaction();
      const probe = committedIds[0] as string;
      await waitUntil(
        () => reached(probe) === total || failedSubscribers() > 0,
        DELIVERY_TIMEOUT_MS,
        () => `the probe event to reach all ${total} subscribers (${reached(probe)} did)`,
      );
      if (failedSubscribers() > 0) {
        const failed = records.find((r) => r.errors.length > 0 || r.completed);
        throw new Error(
          `${failedSubscribers()} of ${total} subscriptions ended while connecting; the first (${failed?.transport}): ` +
            (failed?.completed ? 'completed' : describeError(failed?.errors[0])),
        );
      }
      const connectMs = performance.now() - connectStarted;
      const memoryConnected = service.memory();
      progress.step(`${total} subscribers live in ${formatCount(connectMs)} ms`);

      const firstRate = settings.rates[0] ?? 20;
      progress.status(`warm-up at ${firstRate} events/s`);
      await runOpenLoop({
        rate: firstRate,
        seconds: settings.warmupSeconds,
        maxInFlight: PRODUCERS,
        transaction,
      });
      progress.step('warm-up');

      // Every subscriber must end up with every event committed so far. A server that has fallen behind
      // catches up slowly but steadily: wait while deliveries keep arriving, and call an event missing only
      // once nothing has arrived for STALL_TIMEOUT_MS (or after MAX_DRAIN_MS in all).
      const drain = async (): Promise<number> => {
        const started = performance.now();
        const last = committedIds.at(-1) as string;
        const everyoneHasAll = () =>
          records.every((r) => r.receivedAt.size >= committedIds.length && r.receivedAt.has(last));
        let lastCount = -1;
        let lastProgressAt = performance.now();
        await waitUntil(() => {
          if (everyoneHasAll() || failedSubscribers() > 0) return true;
          const count = records.reduce((n, r) => n + r.receivedAt.size, 0);
          if (count !== lastCount) {
            lastCount = count;
            lastProgressAt = performance.now();
          }
          return performance.now() - lastProgressAt > STALL_TIMEOUT_MS;
        }, MAX_DRAIN_MS).catch(() => undefined);
        return performance.now() - started;
      };

      const levels: Level[] = [];
      for (const rate of settings.rates) {
        progress.status(`${rate} events/s to ${total} subscribers`);
        const committedAt = new Map<string, number>();
        measuredWindow = committedAt;
        let peakRss = 0;
        const sampleMemory = () => {
          const sample = service?.memory();
          if (sample) peakRss = Math.max(peakRss, sample.rssBytes);
        };
        sampleMemory();
        sampler = setInterval(sampleMemory, 250);
        const cpuBefore = service.cpuSeconds();
        const load = await runOpenLoop({
          rate,
          seconds: settings.seconds,
          maxInFlight: PRODUCERS,
          transaction,
        });
        measuredWindow = undefined;
        const cpuAfter = service.cpuSeconds();
        // How far delivery is behind when the producer stops: receipts owed to the subscribers.
        const owed = committedIds.length * total - records.reduce((n, r) => n + r.receivedAt.size, 0);
        const drainMs = await drain();
        clearInterval(sampler);
        sampler = undefined;
        sampleMemory();
        levels.push({
          rate,
          load,
          committedAt,
          peakRss,
          owedAtWindowEnd: owed,
          drainMs,
          serverCpuShare:
            cpuBefore !== undefined && cpuAfter !== undefined
              ? (cpuAfter - cpuBefore) / load.seconds
              : undefined,
        });
        progress.step(`${rate} events/s`);
      }
      const receipts = records.reduce((n, r) => n + r.receivedAt.size, 0);
      await sleep(DUPLICATE_WATCH_MS);
      const memoryAfter: MemorySample | undefined = service.memory();

      progress.status('checking every subscriber got every event');
      const expected = await logOrder(database.pool(1));
      const logIndex = new Map(expected.map((id, i) => [id, i]));
      const checks = records.map((record) => checkDelivery(record.sequence, logIndex));
      const sum = (key: keyof DeliveryCheck) => checks.reduce((n, check) => n + check[key], 0);
      const badSubscribers = records.filter((record, i) => {
        const check = checks[i] as DeliveryCheck;
        return (
          record.errors.length > 0 ||
          record.completed ||
          check.missing + check.duplicates + check.unexpected + check.outOfOrder > 0
        );
      });
      const delivery = {
        logEvents: expected.length,
        committedByBench: committedIds.length,
        subscribersChecked: records.length,
        receipts,
        subscribersWithProblems: badSubscribers.length,
        missing: sum('missing'),
        duplicates: sum('duplicates'),
        unexpected: sum('unexpected'),
        outOfOrder: sum('outOfOrder'),
        subscriptionErrors: records.reduce((n, r) => n + r.errors.length, 0),
        completedEarly: records.filter((r) => r.completed).length,
        firstErrors: badSubscribers
          .filter((r) => r.errors.length > 0)
          .slice(0, 5)
          .map((r) => `${r.transport}: ${describeError(r.errors[0])}`),
        byTransport: Object.fromEntries(
          (['sse', 'ws'] as const).map((transport) => {
            const own = checks.filter((_, i) => records[i]?.transport === transport);
            return [
              transport,
              {
                subscribersWithProblems: badSubscribers.filter((r) => r.transport === transport).length,
                missing: own.reduce((n, c) => n + c.missing, 0),
                duplicates: own.reduce((n, c) => n + c.duplicates, 0),
                outOfOrder: own.reduce((n, c) => n + c.outOfOrder, 0),
              },
            ];
          }),
        ),
      };
      const exactlyOnceInOrder = badSubscribers.length === 0 && committedIds.every((id) => logIndex.has(id));

      // Disconnect everyone, then stop the service here rather than in `finally`, so its shutdown (and
      // anything it logs then) is in the results.
      closing = true;
      await Promise.all(records.map((record) => record.connection?.close().catch(() => undefined)));
      const exit = await service.stop();
      const logs = service.logSummary();
      if (logs.errors > 0)
        log(`subscriptions: the service logged ${logs.errors} errors: ${logs.errorLines[0]}`);

      const perSubscriberKiB =
        memoryIdle && memoryConnected
          ? (memoryConnected.rssBytes - memoryIdle.rssBytes) / 1024 / Math.max(1, total)
          : undefined;
      const label = `${settings.sse} SSE + ${settings.websocket} WS`;
      const rows: TableRow[] = [];
      const targets: TargetCheck[] = [];
      const latency: LatencyBar[] = [];
      const levelResults: Record<string, unknown>[] = [];
      for (const level of levels) {
        const { all, sse, ws, beforeCommitAck } = latencies(level.committedAt, records);
        const committedRate = level.load.completed / level.load.seconds;
        const met = all.p99 <= P99_TARGET_MS && all.count > 0;
        const cpu = level.serverCpuShare;
        log(
          `subscriptions ${level.rate}/s: ${formatCount(committedRate)} events/s to ${total} subscribers, ` +
            `p50 ${formatMs(all.p50)} ms, p99 ${formatMs(all.p99)} ms, ${formatCount(level.owedAtWindowEnd)} ` +
            `deliveries owed at the window's end, drained in ${formatCount(level.drainMs)} ms`,
        );
        rows.push(
          {
            scenario: `6 Subscriptions ${label}, ${level.rate}/s`,
            figure: 'commit→receipt ms',
            median: `p50 ${formatMs(all.p50)}`,
            spread: `p95 ${formatMs(all.p95)} · p99 ${formatMs(all.p99)} · max ${formatMs(all.max)}`,
            ratio:
              `${formatCount(committedRate * total)} deliveries/s` +
              (cpu === undefined ? '' : ` · server ${Math.round(cpu * 100)}% CPU`),
            target: formatTarget(met, `p99 ≤ ${P99_TARGET_MS}`),
          },
          {
            scenario: `6 Subscriptions SSE / WS, ${level.rate}/s`,
            figure: 'commit→receipt ms',
            median: `p50 ${formatMs(sse.p50)} / ${formatMs(ws.p50)}`,
            spread: `p99 ${formatMs(sse.p99)} / ${formatMs(ws.p99)} · max ${formatMs(sse.max)} / ${formatMs(ws.max)}`,
            ratio:
              level.owedAtWindowEnd > 0 ? `${formatCount(level.owedAtWindowEnd)} owed at window end` : '',
            target: '',
          },
        );
        targets.push({
          name: `subscription p99 ≤ ${P99_TARGET_MS} ms with ${total} subscribers at ${level.rate} events/s`,
          target: `≤ ${P99_TARGET_MS}`,
          actual: all.p99.toFixed(2),
          met,
        });
        latency.push({ label: `subscriptions ${total} subs, ${level.rate}/s`, ...all });
        levelResults.push({
          rate: level.rate,
          seconds: round(level.load.seconds, 2),
          offered: level.load.started,
          committed: level.load.completed,
          failedWrites: level.load.failed,
          producerBehind: level.load.behind,
          deliveriesPerSecond: round(committedRate * total, 0),
          latencyMs: latencyJson(all),
          latencyByTransportMs: { sse: latencyJson(sse), ws: latencyJson(ws) },
          arrivedBeforeCommitAck: beforeCommitAck,
          owedAtWindowEnd: level.owedAtWindowEnd,
          drainAfterWindowMs: round(level.drainMs, 0),
          serverCpuShare: cpu === undefined ? null : round(cpu, 2),
          serverPeakRssMiB: mib(level.peakRss),
        });
      }
      const peakRss = Math.max(0, ...levels.map((level) => level.peakRss));
      rows.push(
        {
          scenario: `6 Subscriptions delivery`,
          figure: 'missing/dup/order',
          median: `${delivery.missing}/${delivery.duplicates}/${delivery.outOfOrder}`,
          spread: `${formatCount(expected.length)} events × ${total} subscribers`,
          ratio: delivery.subscriptionErrors ? `${delivery.subscriptionErrors} subscription errors` : '',
          target: formatTarget(exactlyOnceInOrder, 'exactly once, in order'),
        },
        {
          scenario: `6 Subscriptions server memory`,
          figure: 'RSS MiB',
          median: `${mib(memoryConnected?.rssBytes) ?? '?'}`,
          spread:
            `idle ${mib(memoryIdle?.rssBytes) ?? '?'} · peak ${mib(peakRss) ?? '?'} · ` +
            `HWM ${mib(memoryAfter?.peakRssBytes) ?? '?'}`,
          ratio: perSubscriberKiB === undefined ? '' : `≈ ${formatCount(perSubscriberKiB)} KiB/subscriber`,
          target: '',
        },
      );
      targets.push({
        name: `every subscriber got every event exactly once, in log order`,
        target: '0 missing, 0 duplicate, 0 out of order',
        actual:
          `${delivery.missing} missing, ${delivery.duplicates} duplicate, ${delivery.outOfOrder} out of order, ` +
          `${delivery.subscribersWithProblems} subscribers affected`,
        met: exactlyOnceInOrder,
      });
      progress.step(
        exactlyOnceInOrder
          ? `${formatCount(expected.length)} events × ${total}: exactly once, in order`
          : `${badSubscribers.length} subscribers missed events`,
      );
      return {
        results: {
          subscriptions: {
            status: exactlyOnceInOrder ? 'ok' : 'failed',
            ...(exactlyOnceInOrder
              ? {}
              : {
                  error:
                    `${badSubscribers.length} of ${total} subscribers did not get every event exactly once in ` +
                    `log order (missing ${delivery.missing}, duplicates ${delivery.duplicates}, out of order ` +
                    `${delivery.outOfOrder}, errors ${delivery.subscriptionErrors})`,
                }),
            measure:
              'bench clock: COMMIT resolved in the bench producer → `events` subscription message received by ' +
              'each client (same process, performance.now()), every (subscriber, event) pair of the window',
            service: {
              command: 'postbox serve --no-workers (API only), child process',
              settings: service.settings,
              feed: 'one log reader: LISTEN wake-ups (every write notifies: no relay) + 50 ms polling',
            },
            subscribers: { sse: settings.sse, websocket: settings.websocket, query: EVENTS_SUBSCRIPTION },
            warmupSeconds: settings.warmupSeconds,
            connectMs: round(connectMs, 0),
            levels: levelResults,
            delivery,
            serverMemoryMiB: {
              idle: mib(memoryIdle?.rssBytes),
              connected: mib(memoryConnected?.rssBytes),
              peakDuringWindows: mib(peakRss),
              afterWindows: mib(memoryAfter?.rssBytes),
              highWaterMark: mib(memoryAfter?.peakRssBytes),
              perSubscriberKiB: perSubscriberKiB === undefined ? null : round(perSubscriberKiB, 1),
            },
            serverLog: logs,
            serverProcess: { startMs: round(service.startMs, 0), ...exit, stopMs: round(exit.stopMs, 0) },
            target: { p99Ms: P99_TARGET_MS },
          },
        },
        rows,
        latency,
        targets,
      };
    } finally {
      if (sampler) clearInterval(sampler);
      closing = true;
      await Promise.all(records.map((record) => record.connection?.close().catch(() => undefined)));
      if (service) {
        const exit = await service.stop();
        if (exit.killed) log('subscriptions: the service did not stop on SIGTERM within 15 s and was killed');
      }
      await database.drop();
    }
  },
};

/** Every event id of the log in its read order (the order subscriptions must deliver in). */
async function logOrder(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    'select id::text as id from outbox.events order by log_xid, position',
  );
  return rows.map((row) => row.id);
}

/** Compares one subscriber's arrivals with the log's order (`logIndex`: event id → place in the log). */
function checkDelivery(sequence: readonly string[], logIndex: ReadonlyMap<string, number>): DeliveryCheck {
  const seen = new Set<string>();
  let duplicates = 0;
  let unexpected = 0;
  let outOfOrder = 0;
  let previous = -1;
  for (const id of sequence) {
    if (seen.has(id)) {
      duplicates++;
      continue;
    }
    seen.add(id);
    const at = logIndex.get(id);
    if (at === undefined) {
      unexpected++;
      continue;
    }
    if (at < previous) outOfOrder++;
    previous = Math.max(previous, at);
  }
  let missing = 0;
  for (const id of logIndex.keys()) if (!seen.has(id)) missing++;
  return { missing, duplicates, unexpected, outOfOrder };
}

/** Arrival − commit over every (subscriber, event) pair of one window, in all and by transport. */
function latencies(committedAt: ReadonlyMap<string, number>, records: readonly SubscriberRecord[]) {
  const all: number[] = [];
  const byTransport: Record<Transport, number[]> = { sse: [], ws: [] };
  let beforeCommitAck = 0;
  for (const [id, committed] of committedAt) {
    for (const record of records) {
      const at = record.receivedAt.get(id);
      if (at === undefined) continue;
      // The event can arrive before this process has read the COMMIT's reply (one event loop): 0 ms.
      if (at < committed) beforeCommitAck++;
      const ms = Math.max(0, at - committed);
      all.push(ms);
      byTransport[record.transport].push(ms);
    }
  }
  return {
    all: percentiles(all),
    sse: percentiles(byTransport.sse),
    ws: percentiles(byTransport.ws),
    beforeCommitAck,
  };
}
