import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { createDb } from '../../src/engine/db/database.ts';
import {
  createDestination,
  defineEvent,
  getDestination,
  pauseDestination,
  resumeDestination,
  startPostbox,
} from '../../src/engine/index.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { waitUntil } from '../lib/engine.ts';
import { percentiles, percentilesJson, round } from '../lib/stats.ts';
import { runOpenLoop } from '../lib/workload.ts';
import { formatCount, formatMs, formatTarget } from '../report/format.ts';
import type { ScenarioModule, TableRow, TargetCheck } from '../scenario.ts';

const Hooked = defineEvent({
  type: 'BenchHooked',
  streamType: 'hook',
  schema: z.object({ n: z.number().int() }),
});

/** A local receiver: answers 200 (or 503 while `down`), records when each webhook-id first arrived. */
class Receiver {
  down = false;
  requests = 0;
  readonly firstSeen = new Map<string, number>();
  readonly #server = http.createServer((req, res) => {
    this.requests++;
    const id = String(req.headers['webhook-id']);
    req.resume();
    req.on('end', () => {
      if (this.down) {
        res.writeHead(503).end();
        return;
      }
      if (!this.firstSeen.has(id)) this.firstSeen.set(id, performance.now());
      res.writeHead(204).end();
    });
  });
  async start(): Promise<string> {
    this.#server.keepAliveTimeout = 60_000;
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hook`;
  }
  stop(): void {
    this.#server.closeAllConnections();
    this.#server.close();
  }
}

/**
 * Scenario 8: webhook delivery to a receiver on loopback, in the bench's process (Postbox with its defaults:
 * 8 in flight, batches of 50, Standard Webhooks signatures, CloudEvents bodies).
 * 1. Throughput: a backlog appended while the destination is paused, then resumed — events/s until all
 *    arrived (first arrival of each webhook-id).
 * 2. Latency at 25 % of that rate: commit → first arrival at the receiver, p50/p99.
 * 3. Outage: at the same load the receiver answers 503 for `outageSeconds` — requests sent meanwhile
 *    (bounded by the circuit: 5 failures, then one probe per 5 s cool-down), events lost (must be 0) and the
 *    time from recovery until every committed event arrived.
 */
export const webhookScenario: ScenarioModule = {
  keys: ['webhook'],
  title: 'Webhook destinations',
  steps: () => 3,
  async run({ server, plan, progress, log }) {
    const settings = plan.webhook;
    const database = await server.createDatabase('webhook');
    const receiver = new Receiver();
    const url = await receiver.start();
    const producerPool = database.pool(8);
    const db = createDb(producerPool);
    const postbox = await startPostbox({
      pool: database.pool(20),
      consumers: [],
      destinationAddressPolicy: { allow: ['127.0.0.0/8'] },
      guardWorkerRejections: false,
    });
    const committedAt = new Map<string, number>();
    let sequence = 0;
    const appendOne = async () => {
      const event = Hooked.create(`s${sequence++ % settings.streams}`, { n: sequence });
      await db.transaction().execute((trx) => appendEvents(trx, [event]));
      committedAt.set(event.id as string, performance.now());
    };
    try {
      await createDestination(
        db,
        {
          name: 'bench-hook',
          kind: 'webhook',
          url,
          filter: { types: ['BenchHooked'] },
          breaker: { failureThreshold: 5, coolDownMs: 5000 },
          retry: { initialDelayMs: 200, maxDelayMs: 2000 },
        },
        { addressPolicy: { allow: ['127.0.0.0/8'] } },
      );

      // 1. Throughput on a backlog.
      progress.status('webhook: backlog');
      await pauseDestination(db, 'bench-hook');
      const ids: string[] = [];
      for (let i = 0; i < settings.events; i += 500) {
        const chunk = Array.from({ length: Math.min(500, settings.events - i) }, (_, j) =>
          Hooked.create(`s${(i + j) % settings.streams}`, { n: i + j }),
        );
        await db.transaction().execute((trx) => appendEvents(trx, chunk));
        ids.push(...chunk.map((event) => event.id as string));
      }
      const started = performance.now();
      await resumeDestination(db, 'bench-hook');
      await waitUntil(() => ids.every((id) => receiver.firstSeen.has(id)), 600_000);
      const throughput = settings.events / ((performance.now() - started) / 1000);
      progress.step(`webhook: ${formatCount(throughput)} events/s`);

      // 2. Latency at 25 % load.
      const rate = Math.max(1, throughput * 0.25);
      committedAt.clear();
      await runOpenLoop({ rate, seconds: settings.latencySeconds, maxInFlight: 8, transaction: appendOne });
      await waitUntil(() => [...committedAt.keys()].every((id) => receiver.firstSeen.has(id)), 60_000);
      const latency = percentiles(
        [...committedAt].map(([id, at]) => Math.max(0, (receiver.firstSeen.get(id) ?? at) - at)),
      );
      progress.step(`webhook: p50 ${formatMs(latency.p50)} ms, p99 ${formatMs(latency.p99)} ms`);

      // 3. A receiver outage under the same load.
      committedAt.clear();
      receiver.down = true;
      const requestsBefore = receiver.requests;
      const outageLoad = runOpenLoop({
        rate,
        seconds: settings.outageSeconds,
        maxInFlight: 8,
        transaction: appendOne,
      });
      await outageLoad;
      const requestsDuringOutage = receiver.requests - requestsBefore;
      const circuit = (await getDestination(db, 'bench-hook')).circuit.state;
      receiver.down = false;
      const recovered = performance.now();
      let drained = true;
      try {
        await waitUntil(() => [...committedAt.keys()].every((id) => receiver.firstSeen.has(id)), 120_000);
      } catch {
        drained = false;
      }
      const drainSeconds = (performance.now() - recovered) / 1000;
      const lost = [...committedAt.keys()].filter((id) => !receiver.firstSeen.has(id)).length;
      const deadLetters = (await getDestination(db, 'bench-hook')).deadLetters;
      progress.step(
        `webhook outage: ${requestsDuringOutage} requests, ${lost} lost, drained in ${drainSeconds.toFixed(1)} s`,
      );
      log(
        `webhook: ${formatCount(throughput)} events/s; p50 ${formatMs(latency.p50)} p99 ${formatMs(latency.p99)} ms at ${formatCount(rate)}/s; ` +
          `outage ${settings.outageSeconds}s: ${requestsDuringOutage} requests (circuit ${circuit}), ${lost} lost, ${deadLetters} dead letters, drained ${drainSeconds.toFixed(1)} s after recovery`,
      );

      const rows: TableRow[] = [
        {
          scenario: '8 Webhooks',
          figure: 'events/s delivered',
          median: formatCount(throughput),
          spread: `${settings.events} events, ${settings.streams} streams`,
          ratio: '',
          target: '',
        },
        {
          scenario: '8 Webhooks 25 % load',
          figure: 'commit→received ms',
          median: `p50 ${formatMs(latency.p50)}`,
          spread: `p99 ${formatMs(latency.p99)} · max ${formatMs(latency.max)}`,
          ratio: `${formatCount(rate)}/s`,
          target: '',
        },
        {
          scenario: `8 Webhooks ${settings.outageSeconds} s outage`,
          figure: 'lost · requests · drain',
          median: `${lost} lost`,
          spread: `${requestsDuringOutage} requests during the outage`,
          ratio: `drained ${drainSeconds.toFixed(1)} s after recovery`,
          target: formatTarget(lost === 0 && drained, '0 lost'),
        },
      ];
      const targets: TargetCheck[] = [
        {
          name: 'webhook outage: events lost',
          target: '0',
          actual: String(lost),
          met: lost === 0 && drained,
        },
      ];
      return {
        results: {
          webhook: {
            status: 'ok',
            throughput: {
              events: settings.events,
              streams: settings.streams,
              eventsPerSecond: round(throughput, 1),
            },
            latency: {
              measure: 'COMMIT resolved in the producer → first arrival of the webhook-id at the receiver',
              rate: round(rate, 1),
              ms: percentilesJson(latency, 3),
            },
            outage: {
              seconds: settings.outageSeconds,
              breaker: { failureThreshold: 5, coolDownMs: 5000 },
              requestsDuringOutage,
              circuitAtRecovery: circuit,
              committed: committedAt.size,
              lost,
              deadLetters,
              drainSecondsAfterRecovery: round(drainSeconds, 2),
            },
          },
        },
        rows,
        targets,
      };
    } finally {
      await postbox.stop();
      receiver.stop();
      await database.drop();
    }
  },
};
