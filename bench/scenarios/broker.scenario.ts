import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import amqp from 'amqplib';
import { z } from 'zod';
import { createDb } from '../../src/engine/db/database.ts';
import {
  createDestination,
  type DestinationInput,
  defineEvent,
  deleteDestination,
  pauseDestination,
  resumeDestination,
  startPostbox,
} from '../../src/engine/index.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { BENCH_RABBITMQ_URL, NATS_SERVER_BINARY, reachable, startNatsServer } from '../lib/brokers.ts';
import { waitUntil } from '../lib/engine.ts';
import { percentiles, percentilesJson, round } from '../lib/stats.ts';
import { runOpenLoop } from '../lib/workload.ts';
import { formatCount, formatMs } from '../report/format.ts';
import type { ScenarioModule, TableRow } from '../scenario.ts';

const Published = defineEvent({
  type: 'BenchPublished',
  streamType: 'bench',
  schema: z.object({ n: z.number().int(), note: z.string() }),
});

/** The payload of every event and raw message (the same bytes both ways). */
const NOTE = 'x'.repeat(100);

/**
 * Publishes in flight at once, Postbox's and the raw client's: the destination's default `maxInFlight`
 * (8 partitions, one unconfirmed publish each), so both wait for the same number of acks at a time.
 */
const IN_FLIGHT = 8;

/** One broker as the scenario drives it: its destination, a raw publisher, an independent consumer. */
interface BrokerUnderTest {
  /** The destination Postbox publishes through (its URL, subject / exchange…). */
  readonly destination: Omit<DestinationInput, 'name' | 'filter'>;
  /** When each event id (`ce-id`) first reached the consumer, performance.now(). */
  readonly received: Map<string, number>;
  /** Publishes `count` messages with the same client, `IN_FLIGHT` awaiting their ack at a time. */
  rawPublish(count: number): Promise<void>;
  close(): Promise<void>;
}

/** The scenario's own nats-server, a JetStream stream per publisher, a core subscriber as the consumer. */
async function natsUnderTest(run: string): Promise<BrokerUnderTest> {
  const server = await startNatsServer();
  const reader = await connect({ servers: server.url });
  const publisher = await connect({ servers: server.url });
  const received = new Map<string, number>();
  const subject = `pbbench${run}`;
  reader.subscribe(`${subject}.>`, {
    callback: (_error, message) => {
      const id = message.headers?.get('ce-id');
      if (id && !received.has(id)) received.set(id, performance.now());
    },
  });
  await reader.flush();
  const jsm = await jetstreamManager(publisher);
  // The raw publisher's stream: as the one the destination creates (file storage, a duplicate window).
  await jsm.streams.add({ name: `raw_${run}`, subjects: [`raw${run}.>`], storage: StorageType.File });
  const js = jetstream(publisher);
  return {
    destination: {
      kind: 'nats',
      url: server.url,
      subject: `${subject}.{streamType}.{type}`,
      createStream: true,
    },
    received,
    async rawPublish(count) {
      let next = 0;
      const body = Buffer.from(JSON.stringify({ n: 0, note: NOTE }));
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next < count) {
            const n = next++;
            const h = natsHeaders();
            h.set('ce-id', randomUUID());
            await js.publish(`raw${run}.bench.${n % 200}`, body, { msgID: h.get('ce-id'), headers: h });
          }
        }),
      );
    },
    async close() {
      await reader.close();
      await publisher.close();
      await server.stop();
    },
  };
}

/** The machine's RabbitMQ with exchanges and queues of this run; an exclusive queue per exchange. */
async function rabbitmqUnderTest(run: string): Promise<BrokerUnderTest> {
  const exchange = `pbbench-${run}`;
  const rawExchange = `pbbench-raw-${run}`;
  const connection = await amqp.connect(BENCH_RABBITMQ_URL);
  const received = new Map<string, number>();
  const consumer = await connection.createChannel();
  await consumer.assertExchange(exchange, 'topic', { durable: true });
  await consumer.assertExchange(rawExchange, 'topic', { durable: true });
  const queue = (await consumer.assertQueue('', { exclusive: true })).queue;
  const rawQueue = (await consumer.assertQueue('', { exclusive: true })).queue;
  await consumer.bindQueue(queue, exchange, '#');
  await consumer.bindQueue(rawQueue, rawExchange, '#');
  await consumer.consume(
    queue,
    (message) => {
      const id = message?.properties.messageId as string | undefined;
      if (id && !received.has(id)) received.set(id, performance.now());
    },
    { noAck: true },
  );
  await consumer.consume(rawQueue, () => {}, { noAck: true });
  const confirm = await connection.createConfirmChannel();
  return {
    destination: { kind: 'rabbitmq', url: BENCH_RABBITMQ_URL, exchange, routingKey: '{streamType}.{type}' },
    received,
    async rawPublish(count) {
      let next = 0;
      const body = Buffer.from(JSON.stringify({ n: 0, note: NOTE }));
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next < count) {
            const n = next++;
            await new Promise<void>((resolve, reject) =>
              confirm.publish(
                rawExchange,
                `bench.${n % 200}`,
                body,
                { persistent: true, messageId: randomUUID(), contentType: 'application/json' },
                (error) => (error ? reject(error) : resolve()),
              ),
            );
          }
        }),
      );
    },
    async close() {
      await confirm.close().catch(() => {});
      await consumer.deleteExchange(exchange).catch(() => {});
      await consumer.deleteExchange(rawExchange).catch(() => {});
      await connection.close().catch(() => {});
    },
  };
}

const BROKERS: readonly {
  readonly key: 'nats' | 'rabbitmq';
  readonly label: string;
  /** Why the broker cannot be measured here, or undefined. */
  unavailable(): Promise<string | undefined>;
  open(run: string): Promise<BrokerUnderTest>;
}[] = [
  {
    key: 'nats',
    label: 'NATS JetStream',
    unavailable: async () =>
      NATS_SERVER_BINARY ? undefined : 'no nats-server binary (apt-get install nats-server)',
    open: natsUnderTest,
  },
  {
    key: 'rabbitmq',
    label: 'RabbitMQ',
    unavailable: async () =>
      (await reachable('127.0.0.1', 5672)) ? undefined : 'no RabbitMQ on 127.0.0.1:5672',
    open: rabbitmqUnderTest,
  },
];

/**
 * Scenario 9: broker destinations. Per broker (NATS JetStream on a nats-server of the scenario's own,
 * RabbitMQ on the machine's with exchanges and queues named for the run), Postbox with its defaults (8 in
 * flight, the next event of a stream after the previous one's ack):
 * 1. Throughput: a backlog appended while the destination is paused, then resumed — events/s until an
 *    independent consumer (a core NATS subscriber; an exclusive RabbitMQ queue) received every event id.
 * 2. The same client publishing the same number of messages from this process, 8 awaiting their ack at a
 *    time (Postbox's in-flight shape), in the same run: the ratio Postbox / raw.
 * 3. Latency at 25 % of Postbox's rate: commit → the event id first received by the consumer, p50/p99.
 * A broker that is not there is skipped with the reason printed.
 */
export const brokerScenario: ScenarioModule = {
  keys: ['broker'],
  title: 'Broker destinations',
  steps: () => BROKERS.length * 3,
  async run({ server, plan, progress, log }) {
    const settings = plan.broker;
    const run = randomUUID().slice(0, 8);
    const database = await server.createDatabase('broker');
    const db = createDb(database.pool(8));
    const postbox = await startPostbox({
      pool: database.pool(20),
      consumers: [],
      destinationAddressPolicy: { allow: ['127.0.0.0/8'] },
      guardWorkerRejections: false,
    });
    const results: Record<string, unknown> = {};
    const rows: TableRow[] = [];
    try {
      for (const broker of BROKERS) {
        const reason = await broker.unavailable();
        if (reason) {
          log(`broker: ${broker.label} skipped: ${reason}`);
          progress.step(`${broker.label}: skipped (${reason})`);
          progress.step(`${broker.label}: skipped`);
          progress.step(`${broker.label}: skipped`);
          results[broker.key] = { status: 'skipped', reason };
          rows.push({
            scenario: `9 ${broker.label}`,
            figure: 'skipped',
            median: '',
            spread: reason,
            ratio: '',
            target: '',
          });
          continue;
        }
        const target = await broker.open(run);
        const name = `bench-${broker.key}`;
        try {
          await createDestination(
            db,
            { ...target.destination, name, filter: { types: ['BenchPublished'] } } as DestinationInput,
            { addressPolicy: { allow: ['127.0.0.0/8'] } },
          );

          // 1. Postbox on a backlog.
          progress.status(`${broker.label}: backlog`);
          await pauseDestination(db, name);
          const ids: string[] = [];
          for (let i = 0; i < settings.events; i += 500) {
            const chunk = Array.from({ length: Math.min(500, settings.events - i) }, (_, j) =>
              Published.create(`s${(i + j) % settings.streams}`, { n: i + j, note: NOTE }),
            );
            await db.transaction().execute((trx) => appendEvents(trx, chunk));
            ids.push(...chunk.map((event) => event.id as string));
          }
          const started = performance.now();
          await resumeDestination(db, name);
          await waitUntil(
            () => ids.every((id) => target.received.has(id)),
            600_000,
            () => `${target.received.size} of ${ids.length} received`,
          );
          const throughput = settings.events / ((performance.now() - started) / 1000);
          progress.step(`${broker.label}: ${formatCount(throughput)} events/s through Postbox`);

          // 2. The raw client, same count, same in-flight.
          const rawStarted = performance.now();
          await target.rawPublish(settings.events);
          const raw = settings.events / ((performance.now() - rawStarted) / 1000);
          progress.step(`${broker.label}: raw ${formatCount(raw)} events/s`);

          // 3. Latency at 25 % load.
          const rate = Math.max(1, throughput * 0.25);
          const committedAt = new Map<string, number>();
          let sequence = 0;
          await runOpenLoop({
            rate,
            seconds: settings.latencySeconds,
            maxInFlight: 8,
            transaction: async () => {
              const event = Published.create(`s${sequence++ % settings.streams}`, {
                n: sequence,
                note: NOTE,
              });
              await db.transaction().execute((trx) => appendEvents(trx, [event]));
              committedAt.set(event.id as string, performance.now());
            },
          });
          await waitUntil(() => [...committedAt.keys()].every((id) => target.received.has(id)), 60_000);
          const latency = percentiles(
            [...committedAt].map(([id, at]) => Math.max(0, (target.received.get(id) ?? at) - at)),
          );
          progress.step(`${broker.label}: p50 ${formatMs(latency.p50)} ms, p99 ${formatMs(latency.p99)} ms`);
          const ratio = throughput / raw;
          log(
            `broker ${broker.label}: Postbox ${formatCount(throughput)} events/s, raw client ${formatCount(raw)} events/s (${ratio.toFixed(2)}×); ` +
              `p50 ${formatMs(latency.p50)} p99 ${formatMs(latency.p99)} ms at ${formatCount(rate)}/s`,
          );
          results[broker.key] = {
            status: 'ok',
            events: settings.events,
            streams: settings.streams,
            inFlight: IN_FLIGHT,
            postboxEventsPerSecond: round(throughput, 1),
            rawEventsPerSecond: round(raw, 1),
            ratio: round(ratio, 3),
            latency: {
              measure:
                'COMMIT resolved in the producer → the event id first received by an independent consumer',
              rate: round(rate, 1),
              events: committedAt.size,
              ms: percentilesJson(latency, 3),
            },
          };
          rows.push(
            {
              scenario: `9 ${broker.label}`,
              figure: 'events/s published',
              median: formatCount(throughput),
              spread: `raw client ${formatCount(raw)}/s, ${IN_FLIGHT} in flight`,
              ratio: `${ratio.toFixed(2)}× raw`,
              target: '',
            },
            {
              scenario: `9 ${broker.label} 25 % load`,
              figure: 'commit→received ms',
              median: `p50 ${formatMs(latency.p50)}`,
              spread: `p99 ${formatMs(latency.p99)} · max ${formatMs(latency.max)}`,
              ratio: `${formatCount(rate)}/s`,
              target: '',
            },
          );
        } finally {
          await deleteDestination(db, name).catch(() => {});
          await target.close();
        }
      }
      return { results: { broker: { status: 'ok', ...results } }, rows, targets: [] };
    } finally {
      await postbox.stop();
      await database.drop();
    }
  },
};
