import { randomUUID } from 'node:crypto';
import { Admin, Consumer, type Message, MessagesStreamModes } from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDestination,
  type DestinationInput,
  getDestination,
  type Postbox,
  startPostbox,
  testDestination,
  ValidationError,
} from '../../src/engine/index.ts';
import { freePort } from '../helpers/brokers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { kafkaForTests } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/wait.ts';
import { appendInterleaved, counterEvent } from './destination-fixtures.ts';

// A real broker or none: KAFKA_BROKERS, else a testcontainers Kafka when Docker is reachable.
const kafka = await kafkaForTests();
if (kafka.brokers === undefined)
  console.warn(`Kafka destination suite against a broker SKIPPED: ${kafka.skipReason}`);
else console.info(`Kafka destination suite against ${kafka.brokers} (${kafka.source})`);

/** Topic names of this run: nothing left by an earlier run is read. */
const run = randomUUID().slice(0, 8);

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 12 });
}, 60_000);
afterAll(async () => {
  await t?.drop();
  if (kafka.brokers !== undefined) await kafka.stop();
}, 120_000);

const eventType = counterEvent;

const append = appendInterleaved;

describe('Kafka destinations: checks at creation (no broker needed)', () => {
  const base = { name: 'kafka-bad', kind: 'kafka', filter: { types: ['KafkaBad'] } } as const;
  const refused = async (input: Partial<DestinationInput>, field: string, message: RegExp) => {
    const error = await createDestination(
      t.db,
      { ...base, url: '127.0.0.1:9092', ...input } as DestinationInput,
      {
        addressPolicy: { allowPrivate: true },
      },
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error, JSON.stringify(input)).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe(field);
    expect((error as ValidationError).message).toMatch(message);
  };

  it('an unreachable broker (a closed local port) fails the connection check: a typed error naming url, nothing written', async () => {
    const port = await freePort(); // nothing listens on it
    const started = Date.now();
    await refused(
      { url: `kafka://127.0.0.1:${port}`, timeoutMs: 1000 },
      'url',
      /^url: .*(ECONNREFUSED|connect)/i,
    );
    expect(Date.now() - started).toBeLessThan(15_000);
    await expect(getDestination(t.db, 'kafka-bad')).rejects.toThrow(/No destination/);
    const { rows } = await t.pool.query(
      `select (select count(*) from outbox.consumers where name = 'kafka-bad')::int as consumers,
              (select count(*) from outbox.destinations where name = 'kafka-bad')::int as destinations`,
    );
    expect(rows).toEqual([{ consumers: 0, destinations: 0 }]);
  }, 30_000);

  it('a bad broker list or topic template is refused before any connection, naming the field', async () => {
    await refused({ url: '127.0.0.1:9092,:9092' }, 'url', /not host:port/);
    await refused({ url: 'kafka://127.0.0.1:99999' }, 'url', /invalid port/);
    await refused({ topic: 'orders/{type}' }, 'topic', /letters, digits/);
    await refused({ topic: 'orders.{nope}' }, 'topic', /unknown placeholder/);
    await refused({ routingKey: '{type}' }, 'routingKey', /only for rabbitmq/);
    // The address policy looks at every bootstrap broker, not only the first.
    const error = await createDestination(t.db, {
      ...base,
      url: 'kafka://93.184.215.14:9092,127.0.0.1:9092',
    } as DestinationInput).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).message).toMatch(/127\.0\.0\.1 is a private, loopback/);
  });
});

interface ReadMessage {
  readonly id: string;
  readonly key: string;
  readonly partition: number;
  readonly version: number;
  readonly headers: Record<string, string>;
  readonly body: unknown;
}

describe.skipIf(!kafka.brokers)('Kafka destinations against a real broker', () => {
  const brokers = kafka.brokers?.split(',') ?? [];
  let postbox: Postbox;
  let admin: Admin;

  beforeAll(async () => {
    admin = new Admin({ clientId: 'postbox-test-admin', bootstrapBrokers: brokers });
    postbox = await startPostbox({
      pool: t.pool,
      consumers: [],
      pollIntervalMs: 200,
      destinationAddressPolicy: { allowPrivate: true },
    });
  }, 120_000);
  afterAll(async () => {
    await postbox?.stop();
    await admin?.close();
  }, 60_000);

  /**
   * Every record of `topic` from the beginning, read with the `@platformatic/kafka` consumer itself (not
   * Postbox code), until `expected` distinct ids arrived or the time is up.
   */
  async function readTopic(topic: string, expected: number, timeoutMs = 120_000): Promise<ReadMessage[]> {
    const consumer = new Consumer({
      groupId: `postbox-test-${randomUUID()}`,
      clientId: 'postbox-test-reader',
      bootstrapBrokers: brokers,
    });
    const messages: ReadMessage[] = [];
    const ids = new Set<string>();
    try {
      const stream = await consumer.consume({
        topics: [topic],
        mode: MessagesStreamModes.EARLIEST,
        autocommit: false,
      });
      const deadline = setTimeout(() => void stream.close(), timeoutMs);
      for await (const message of stream as AsyncIterable<Message>) {
        const headers: Record<string, string> = {};
        for (const [name, value] of message.headers) headers[name.toString()] = value.toString();
        const id = headers.ce_id ?? '';
        ids.add(id);
        messages.push({
          id,
          key: message.key.toString(),
          partition: message.partition,
          version: Number(headers.ce_streamversion),
          headers,
          body: JSON.parse(message.value.toString()),
        });
        if (ids.size >= expected) break;
      }
      clearTimeout(deadline);
      await stream.close();
    } finally {
      await consumer.close(true);
    }
    return messages;
  }

  /** After deduplication by ce_id: each stream's versions in the order its partition holds them, none missing. */
  function expectStreamOrder(messages: readonly ReadMessage[], perStream: number): void {
    const seen = new Set<string>();
    const byStream = new Map<string, number[]>();
    const partitions = new Map<string, Set<number>>();
    for (const message of messages) {
      partitions.set(message.key, (partitions.get(message.key) ?? new Set()).add(message.partition));
      if (seen.has(message.id)) continue;
      seen.add(message.id);
      byStream.set(message.key, [...(byStream.get(message.key) ?? []), message.version]);
    }
    for (const [stream, versions] of byStream)
      expect(versions, `order of ${stream}`).toEqual(Array.from({ length: perStream }, (_, i) => i + 1));
    for (const [stream, set] of partitions) expect(set.size, `partitions of ${stream}`).toBe(1);
  }

  it('20,000 events on 500 streams: read back by an independent consumer, 0 missing, every stream in version order in one partition, CloudEvents ce_ headers', async () => {
    const Placed = eventType('KafkaBulkPlaced');
    const topic = `pbtest-${run}.kafkabulkplaced`;
    await admin.createTopics({ topics: [topic], partitions: 8, replicas: 1 });
    await createDestination(
      t.db,
      {
        name: 'kafka-bulk',
        kind: 'kafka',
        url: kafka.brokers ?? '',
        topic: `pbtest-${run}.{streamType}`,
        filter: { types: ['KafkaBulkPlaced'] },
        maxInFlight: 16,
      },
      { addressPolicy: { allowPrivate: true } },
    );
    const streams = Array.from({ length: 500 }, (_, i) => `order.${i}`);
    const ids = await append(t.db, Placed, streams, 40);
    await waitFor('lag 0', async () => (await getDestination(t.db, 'kafka-bulk')).lag === 0, 240_000);
    const messages = await readTopic(topic, ids.length);
    const distinct = new Set(messages.map((message) => message.id));
    expect(
      [...ids].filter((id) => !distinct.has(id)),
      'missing',
    ).toEqual([]);
    console.info(`Kafka bulk: ${messages.length - distinct.size} duplicates before deduplication by ce_id`);
    expectStreamOrder(messages, 40);
    const first = messages[0] as ReadMessage;
    expect(first.headers).toMatchObject({
      ce_specversion: '1.0',
      ce_id: first.id,
      ce_type: 'KafkaBulkPlaced',
      ce_source: '/postbox',
      'content-type': 'application/json',
    });
    expect(first.body).toEqual({ n: first.version });
    expect(await testDestination(t.db, 'kafka-bulk')).toMatchObject({ ok: true });
  }, 420_000);

  it('the topic missing mid-flow (unknown topic): publishes fail and are retried, the circuit opens; once the topic exists everything arrives, in order', async () => {
    const Ticked = eventType('KafkaLateTicked');
    const topic = `pbtest-${run}.kafkalateticked`;
    await createDestination(
      t.db,
      {
        name: 'kafka-late',
        kind: 'kafka',
        url: kafka.brokers ?? '',
        topic: `pbtest-${run}.{streamType}`,
        filter: { types: ['KafkaLateTicked'] },
        timeoutMs: 1000,
        retry: { initialDelayMs: 100, maxDelayMs: 1000, maxAttempts: 100 },
        breaker: { failureThreshold: 3, coolDownMs: 1000 },
        maxInFlight: 4,
      },
      { addressPolicy: { allowPrivate: true } },
    );
    const ids = await append(
      t.db,
      Ticked,
      Array.from({ length: 50 }, (_, i) => `t${i}`),
      10,
    );
    await waitFor(
      'the circuit opened',
      async () => (await getDestination(t.db, 'kafka-late')).circuit.state !== 'closed',
      60_000,
    );
    expect((await getDestination(t.db, 'kafka-late')).delivered).toBe(0);
    await admin.createTopics({ topics: [topic], partitions: 4, replicas: 1 });
    await waitFor('lag 0', async () => (await getDestination(t.db, 'kafka-late')).lag === 0, 120_000);
    const messages = await readTopic(topic, ids.length);
    expect(new Set(messages.map((message) => message.id))).toEqual(new Set(ids));
    expectStreamOrder(messages, 10);
    const view = await getDestination(t.db, 'kafka-late');
    expect(view.deadLetters).toBe(0);
    expect(view.circuit.state).toBe('closed');
  }, 240_000);
});
