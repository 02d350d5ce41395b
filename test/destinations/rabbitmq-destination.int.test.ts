import { randomBytes } from 'node:crypto';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDestination,
  type DestinationAttempt,
  type DestinationInput,
  deleteDestination,
  getDestination,
  type Logger,
  type Postbox,
  pauseDestination,
  resumeDestination,
  startPostbox,
  testDestination,
  ValidationError,
} from '../../src/engine/index.ts';
import { createTestApi, gqlData } from '../graphql/graphql-fixtures.ts';
import {
  closeRabbitConnections,
  RABBITMQ_URL,
  rabbitConnections,
  reachable,
  SKIP_BROKER_TESTS,
} from '../helpers/brokers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import { appendInterleaved, type CounterEvent, counterEvent } from './destination-fixtures.ts';

const brokerUrl = new URL(RABBITMQ_URL);
const available = await reachable(brokerUrl.hostname, Number(brokerUrl.port || 5672));
const skip = SKIP_BROKER_TESTS && !available;
if (skip)
  console.warn('POSTBOX_SKIP_BROKER_TESTS=1 and no RabbitMQ: the RabbitMQ destination tests are SKIPPED');
/** Unique per run: exchanges and queues of concurrent runs never meet. */
const run = randomBytes(4).toString('hex');

let t: TestDatabase;
let postbox: Postbox;
/** The test's own amqplib connection: declares queues and reads what the destination published. */
let reader: ChannelModel;
let channel: Channel;
const cleanup: (() => Promise<unknown>)[] = [];
const attempts: DestinationAttempt[] = [];
const unexpected: string[] = [];
const expectedWarning = /^(handler failed|destination: )/;
const testLogger: Logger = {
  child: () => testLogger,
  debug: () => {},
  info: () => {},
  warn: (object, message) => {
    if (!expectedWarning.test(message ?? '')) unexpected.push(`${message} ${JSON.stringify(object)}`);
  },
  error: (object, message) => unexpected.push(`${message} ${JSON.stringify(object)}`),
  fatal: (object, message) => unexpected.push(`${message} ${JSON.stringify(object)}`),
};

beforeAll(async () => {
  if (skip) return;
  if (!available)
    throw new Error(
      `RabbitMQ is not reachable at ${brokerUrl.host} (apt-get install rabbitmq-server, or set RABBITMQ_URL); POSTBOX_SKIP_BROKER_TESTS=1 skips these tests`,
    );
  reader = await amqp.connect(RABBITMQ_URL);
  channel = await reader.createChannel();
  t = await createTestDatabase({ poolSize: 20 });
  postbox = await startPostbox({
    pool: t.pool,
    consumers: [],
    pollIntervalMs: 200,
    destinationAddressPolicy: { allowPrivate: true },
    logger: testLogger,
  });
  postbox.events.on('destinationAttempt', (attempt) => attempts.push(attempt));
}, 60_000);
afterAll(async () => {
  if (unexpected.length) console.warn(`engine warnings:\n${unexpected.slice(0, 20).join('\n')}`);
  await postbox?.stop();
  for (const step of cleanup.reverse()) await step().catch(() => {});
  await reader?.close().catch(() => {});
  await t?.drop();
}, 60_000);

const eventType = counterEvent;

const append = (definition: CounterEvent, streams: readonly string[], perStream: number) =>
  appendInterleaved(t.db, definition, streams, perStream);

/** A queue of the test's own bound to the exchange, consumed by amqplib into `received` (arrival order). */
async function bindQueue(
  exchange: string,
  pattern: string,
  options: { maxLength?: number } = {},
): Promise<{ queue: string; received: ConsumeMessage[] }> {
  const queue = `postbox-test-${run}-${randomBytes(3).toString('hex')}`;
  // The destination declares its exchange too; the test declares it first to bind before anything is published.
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.assertQueue(queue, {
    durable: true,
    arguments: options.maxLength ? { 'x-max-length': options.maxLength, 'x-overflow': 'reject-publish' } : {},
  });
  await channel.bindQueue(queue, exchange, pattern);
  cleanup.push(
    () => channel.deleteQueue(queue),
    () => channel.deleteExchange(exchange),
  );
  const received: ConsumeMessage[] = [];
  if (!options.maxLength) {
    await channel.consume(queue, (message) => {
      if (message) {
        received.push(message);
        channel.ack(message);
      }
    });
  }
  return { queue, received };
}

/** First occurrence per messageId, in arrival order. */
function deduplicate(messages: readonly ConsumeMessage[]): ConsumeMessage[] {
  const seen = new Set<string>();
  return messages.filter((message) => {
    const id = String(message.properties.messageId);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** After deduplication by messageId, each stream's versions arrive in order, none missing. */
function expectStreamOrder(messages: readonly ConsumeMessage[], perStream: number): void {
  const byStream = new Map<string, number[]>();
  for (const message of messages) {
    const headers = message.properties.headers ?? {};
    const stream = String(headers['ce-subject']);
    byStream.set(stream, [...(byStream.get(stream) ?? []), Number(headers['ce-streamversion'])]);
  }
  for (const [stream, versions] of byStream)
    expect(versions, `arrival order of ${stream}`).toEqual(
      Array.from({ length: perStream }, (_, i) => i + 1),
    );
}

async function rabbitDestination(
  input: Partial<DestinationInput> & Pick<DestinationInput, 'name' | 'filter'>,
) {
  return createDestination(
    t.db,
    { kind: 'rabbitmq', url: RABBITMQ_URL, ...input },
    { addressPolicy: { allowPrivate: true } },
  );
}

describe.skipIf(skip)('RabbitMQ destinations', () => {
  it('20,000 events on 500 streams: persistent messages, messageId = event id, ce-* headers; read back by amqplib, 0 missing, 0 duplicates, every stream in version order', async () => {
    const Placed = eventType('RabbitBulkPlaced');
    const exchange = `postbox-test-${run}-bulk`;
    const { received } = await bindQueue(exchange, 'rabbitbulkplaced.#');
    const created = await rabbitDestination({
      name: 'rabbit-bulk',
      filter: { types: ['RabbitBulkPlaced'] },
      exchange,
      maxInFlight: 16,
    });
    expect(created.destination.url).toBe('amqp://127.0.0.1:5672');
    expect(JSON.stringify(created.destination)).not.toContain('guest');
    const ids = await append(
      Placed,
      Array.from({ length: 500 }, (_, i) => `o.${i}`),
      40,
    );
    await waitFor('all 20,000 received', async () => received.length >= ids.length, 180_000);
    await waitFor('lag 0', async () => (await getDestination(t.db, 'rabbit-bulk')).lag === 0, 30_000);
    expect(received).toHaveLength(ids.length);
    expect(new Set(received.map((message) => message.properties.messageId))).toEqual(new Set(ids));
    expectStreamOrder(received, 40);
    const first = received[0] as ConsumeMessage;
    expect(first.fields.routingKey).toMatch(/^rabbitbulkplaced\.RabbitBulkPlaced$/);
    expect(first.properties).toMatchObject({
      deliveryMode: 2,
      contentType: 'application/json',
      type: 'RabbitBulkPlaced',
      messageId: first.properties.headers?.['ce-id'],
    });
    expect(first.properties.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-type': 'RabbitBulkPlaced',
      'ce-source': '/postbox',
    });
    expect(JSON.parse(first.content.toString())).toEqual({
      n: Number(first.properties.headers?.['ce-streamversion']),
    });

    expect(await rabbitConnections('postbox:rabbit-bulk')).toHaveLength(1);
    await deleteDestination(t.db, 'rabbit-bulk');
    await waitFor(
      'its connection closed',
      async () => (await rabbitConnections('postbox:rabbit-bulk')).length === 0,
      30_000,
    );
  }, 300_000);

  it('the connection closed by the server mid-flow (rabbitmqctl close_connection): reconnects, publishes the unconfirmed again with the same messageId; nothing lost, order kept', async () => {
    const Ticked = eventType('RabbitLossTicked');
    const exchange = `postbox-test-${run}-loss`;
    const { received } = await bindQueue(exchange, '#');
    await rabbitDestination({
      name: 'rabbit-loss',
      filter: { types: ['RabbitLossTicked'] },
      exchange,
      routingKey: '{streamType}.{streamId}',
      timeoutMs: 2000,
      retry: { initialDelayMs: 100, maxDelayMs: 1000, maxAttempts: 100 },
      breaker: { failureThreshold: 3, coolDownMs: 1000 },
      maxInFlight: 8,
    });
    // Appended while paused, so the connection is closed mid-flow rather than after a flow paced by the appends.
    await pauseDestination(t.db, 'rabbit-loss');
    const ids = await append(
      Ticked,
      Array.from({ length: 100 }, (_, i) => `l${i}`),
      80,
    );
    await resumeDestination(t.db, 'rabbit-loss');
    await waitFor('a part received', async () => received.length >= 500, 60_000);
    const before = attempts.length;
    const receivedBefore = received.length;
    expect(await closeRabbitConnections('postbox:rabbit-loss')).toBe(1);
    const receivedAtClose = received.length;
    await waitFor('lag 0', async () => (await getDestination(t.db, 'rabbit-loss')).lag === 0, 120_000);
    await waitFor('all received', async () => deduplicate(received).length >= ids.length, 30_000);
    const failed = attempts
      .slice(before)
      .filter((a) => a.destination === 'rabbit-loss' && a.outcome !== 'delivered');
    const unique = deduplicate(received);
    console.info(
      `RabbitMQ connection loss: received ${receivedBefore} → ${receivedAtClose} around the close, ${attempts.slice(before).filter((a) => a.destination === 'rabbit-loss').length} attempts since, ${failed.length} failed publishes, ${received.length - unique.length} duplicates delivered (same messageId)`,
    );
    expect(failed.length, 'the loss was seen by delivery').toBeGreaterThan(0);
    expect(failed.every((a) => /RabbitMQ: /.test(a.error ?? ''))).toBe(true);
    expect(new Set(unique.map((message) => message.properties.messageId))).toEqual(new Set(ids));
    expectStreamOrder(unique, 80);
    expect((await getDestination(t.db, 'rabbit-loss')).deadLetters).toBe(0);
    // Reconnected: one connection again.
    expect(await rabbitConnections('postbox:rabbit-loss')).toHaveLength(1);
  }, 240_000);

  it('confirms: a queue that rejects publishes when full (x-overflow reject-publish) nacks; the checkpoint waits, and the rest arrive in order once there is room', async () => {
    const Noted = eventType('RabbitNackNoted');
    const exchange = `postbox-test-${run}-nack`;
    const { queue } = await bindQueue(exchange, '#', { maxLength: 5 });
    await rabbitDestination({
      name: 'rabbit-nack',
      filter: { types: ['RabbitNackNoted'] },
      exchange,
      retry: { initialDelayMs: 200, maxDelayMs: 500, maxAttempts: 100 },
      breaker: { failureThreshold: 1000 },
      maxInFlight: 1,
    });
    const ids = await append(Noted, ['only'], 12);
    await waitFor(
      '5 confirmed',
      async () => (await getDestination(t.db, 'rabbit-nack')).delivered === 5,
      30_000,
    );
    await waitFor(
      'a nack seen',
      async () => attempts.some((a) => a.destination === 'rabbit-nack' && a.outcome === 'failed'),
      30_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const stuck = await getDestination(t.db, 'rabbit-nack');
    // The broker refused the 6th: not checkpointed, nothing after it published.
    expect(stuck.delivered).toBe(5);
    expect(stuck.retrying).toBe(1);
    expect(stuck.lastError).toMatch(/RabbitMQ: .*nack|RabbitMQ: /i);
    const got: ConsumeMessage[] = [];
    await channel.consume(queue, (message) => {
      if (message) {
        got.push(message);
        channel.ack(message);
      }
    });
    await waitFor(
      'the rest delivered',
      async () => (await getDestination(t.db, 'rabbit-nack')).lag === 0,
      60_000,
    );
    await waitFor('all consumed', async () => deduplicate(got).length === ids.length, 30_000);
    expect(deduplicate(got).map((message) => message.properties.messageId)).toEqual(ids);
  }, 120_000);

  it('bad input gets a typed error naming the field and writes nothing: unreachable broker, wrong credentials, bad routing key template, an exchange of another type', async () => {
    const fanout = `postbox-test-${run}-fanout`;
    await channel.assertExchange(fanout, 'fanout', { durable: false, autoDelete: false });
    cleanup.push(() => channel.deleteExchange(fanout));
    const refused = async (input: Partial<DestinationInput>, field: string, message: RegExp) => {
      const error = await rabbitDestination({
        name: 'rabbit-bad',
        filter: { types: ['RabbitBad'] },
        ...input,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, JSON.stringify(input)).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).field).toBe(field);
      expect((error as ValidationError).message).toMatch(message);
    };
    await refused({ url: 'amqp://guest:guest@127.0.0.1:1', timeoutMs: 1000 }, 'url', /ECONNREFUSED/);
    await refused({ url: `amqp://guest:wrong@${brokerUrl.host}` }, 'url', /ACCESS_REFUSED|auth|403/i);
    await refused(
      { url: `amqp://guest:guest@${brokerUrl.host}/no-such-vhost-${run}` },
      'url',
      /vhost|NOT_ALLOWED|ConnectionOpenOk/i,
    );
    await refused({ routingKey: '{streamType}.{stream}' }, 'routingKey', /unknown placeholder/);
    await refused({ exchange: fanout }, 'exchange', /PRECONDITION_FAILED|inequivalent/i);
    await refused({ subject: 'x.{type}' }, 'subject', /only for nats/);
    await refused({ url: 'nats://127.0.0.1:4222' }, 'url', /amqp/);
    const { rows } = await t.pool.query(`select 1 from outbox.consumers where name = 'rabbit-bad'`);
    expect(rows).toEqual([]);

    await rabbitDestination({
      name: 'rabbit-ok',
      filter: { types: ['RabbitOk'] },
      exchange: `postbox-test-${run}-ok`,
    });
    cleanup.push(() => channel.deleteExchange(`postbox-test-${run}-ok`));
    expect(await testDestination(t.db, 'rabbit-ok')).toMatchObject({ ok: true, error: null });
  }, 60_000);

  it('managed through GraphQL like a webhook: kind RABBITMQ with exchange and routing key, the URL without its credentials, typed errors, delete', async () => {
    const api = createTestApi(t.db, t.url, { destinationAddressPolicy: { allowPrivate: true } });
    try {
      const exchange = `postbox-test-${run}-gql`;
      cleanup.push(() => channel.deleteExchange(exchange));
      const create = (input: Record<string, unknown>) =>
        gqlData<{ createDestination: Record<string, unknown> }>(
          api,
          `mutation ($input: CreateDestinationInput!) { createDestination(input: $input) {
             __typename
             ... on CreateDestinationSuccess { destination { name kind url exchange routingKey subject state } }
             ... on ValidationError { field message }
           } }`,
          { input },
        );
      const base = {
        name: 'rabbit-gql',
        kind: 'RABBITMQ',
        url: RABBITMQ_URL,
        filter: { types: ['RabbitGql'] },
      };
      const bad = await create({ ...base, exchange, routingKey: '{streamType}.{oops}' });
      expect(bad.createDestination).toMatchObject({ __typename: 'ValidationError', field: 'routingKey' });
      const created = await create({ ...base, exchange, routingKey: '{type}.{streamId}' });
      expect(created.createDestination).toEqual({
        __typename: 'CreateDestinationSuccess',
        destination: {
          name: 'rabbit-gql',
          kind: 'RABBITMQ',
          url: 'amqp://127.0.0.1:5672',
          exchange,
          routingKey: '{type}.{streamId}',
          subject: null,
          state: 'ACTIVE',
        },
      });
      const listed = await gqlData<{ destinations: { url: string }[] }>(api, '{ destinations { name url } }');
      expect(JSON.stringify(listed)).not.toContain('guest');
      const { rows } = await t.pool.query(
        `select connection_url from outbox.destination_secrets where destination = 'rabbit-gql'`,
      );
      expect(rows).toEqual([{ connection_url: RABBITMQ_URL }]);
      await gqlData(api, 'mutation { deleteDestination(name: "rabbit-gql") { __typename } }');
      await expect(getDestination(t.db, 'rabbit-gql')).rejects.toThrow(/No destination/);
    } finally {
      await api.close?.();
    }
  }, 60_000);
});
