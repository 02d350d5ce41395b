import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDestination,
  type DestinationAttempt,
  type DestinationInput,
  deleteDestination,
  getDestination,
  type Logger,
  type Postbox,
  startPostbox,
  testDestination,
  updateDestination,
  ValidationError,
} from '../../src/engine/index.ts';
import { childEnv, cliEntry, runNode } from '../foundation/processes.ts';
import { NATS_SERVER_BINARY, NatsServer, SKIP_BROKER_TESTS } from '../helpers/brokers.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import { appendInterleaved, counterEvent } from './destination-fixtures.ts';

const skip = SKIP_BROKER_TESTS && !NATS_SERVER_BINARY;
if (skip)
  console.warn('POSTBOX_SKIP_BROKER_TESTS=1 and no nats-server: the NATS destination tests are SKIPPED');

const node = path.resolve('node_modules/.bin/node');
const workerScript = path.resolve('test/fixtures/destination-worker.ts');

let t: TestDatabase;
let postbox: Postbox;
let nats: NatsServer;
/** The test's own client: reads what the destination published (not Postbox code). */
let reader: NatsConnection;
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
const workers = new Set<ChildProcess>();

beforeAll(async () => {
  if (skip) return;
  nats = await NatsServer.start();
  reader = await connect({ servers: nats.url.replace('nats://', ''), maxReconnectAttempts: -1 });
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
  for (const worker of workers) worker.kill('SIGKILL');
  await postbox?.stop();
  await reader?.close();
  await nats?.dispose();
  await t?.drop();
}, 60_000);

const eventType = counterEvent;

const append = appendInterleaved;

interface StoredMessage {
  readonly id: string;
  readonly subject: string;
  readonly stream: string;
  readonly version: number;
  readonly headers: Record<string, string>;
  readonly body: unknown;
}

/** Runs `work` again while it times out (for up to 30 s): the reader's reconnection, not the engine's. */
async function retryOnTimeout<T>(work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await work();
    } catch (error) {
      const timedOut = error instanceof Error && /timeout/i.test(`${error.name} ${error.message}`);
      if (!timedOut || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** Every message the JetStream stream holds, in stream order, read with the `@nats-io/jetstream` client. */
async function readStream(streamName: string): Promise<StoredMessage[]> {
  // After a server restart the test's own reader reconnects with backoff: its first requests may time out.
  const info = await retryOnTimeout(async () => (await jetstreamManager(reader)).streams.info(streamName));
  const total = info.state.messages;
  const consumer = await jetstream(reader).consumers.get(streamName);
  const messages: StoredMessage[] = [];
  if (total === 0) return messages;
  const iterator = await consumer.consume();
  for await (const message of iterator) {
    const headers: Record<string, string> = {};
    for (const key of message.headers?.keys() ?? [])
      headers[key.toLowerCase()] = message.headers?.get(key) ?? '';
    messages.push({
      id: headers['ce-id'] ?? '',
      subject: message.subject,
      stream: headers['ce-subject'] ?? '',
      version: Number(headers['ce-streamversion']),
      headers,
      body: message.json(),
    });
    if (messages.length >= total) break;
  }
  await iterator.close();
  return messages;
}

async function storedCount(streamName: string): Promise<number> {
  const jsm = await jetstreamManager(reader);
  return (await jsm.streams.info(streamName)).state.messages;
}

/** Each stream's versions in the order the broker stored them: strictly increasing, none missing. */
function expectStreamOrder(messages: readonly StoredMessage[], perStream: number): void {
  const byStream = new Map<string, number[]>();
  for (const message of messages)
    byStream.set(message.stream, [...(byStream.get(message.stream) ?? []), message.version]);
  for (const [stream, versions] of byStream) {
    expect(versions, `stored order of ${stream}`).toEqual(Array.from({ length: perStream }, (_, i) => i + 1));
  }
}

async function natsDestination(
  db: TestDatabase['db'],
  input: Partial<DestinationInput> & Pick<DestinationInput, 'name' | 'filter'>,
) {
  return createDestination(
    db,
    { kind: 'nats', url: nats.url, createStream: true, ...input },
    { addressPolicy: { allowPrivate: true } },
  );
}

describe.skipIf(skip)('NATS JetStream destinations', () => {
  it('20,000 events on 500 streams: the stream holds each once (Nats-Msg-Id = event id), every stream in version order, CloudEvents binary headers', async () => {
    const Placed = eventType('NatsBulkPlaced');
    await natsDestination(t.db, {
      name: 'nats-bulk',
      filter: { types: ['NatsBulkPlaced'] },
      subject: 'bulk.{streamType}.{streamId}.{type}',
      maxInFlight: 16,
    });
    const streams = Array.from({ length: 500 }, (_, i) => `order.${i}`);
    const ids = await append(t.db, Placed, streams, 40);
    await waitFor(
      'all 20,000 stored',
      async () => (await storedCount('postbox_nats-bulk').catch(() => 0)) >= ids.length,
      180_000,
    );
    await waitFor('lag 0', async () => (await getDestination(t.db, 'nats-bulk')).lag === 0, 30_000);
    const messages = await readStream('postbox_nats-bulk');
    expect(messages).toHaveLength(ids.length);
    expect(new Set(messages.map((message) => message.id))).toEqual(new Set(ids));
    expectStreamOrder(messages, 40);
    const first = messages[0] as StoredMessage;
    // The stream id's dot becomes _: one subject token per placeholder.
    expect(first.subject).toMatch(/^bulk\.natsbulkplaced\.order_\d+\.NatsBulkPlaced$/);
    expect(first.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-id': first.id,
      'nats-msg-id': first.id,
      'ce-type': 'NatsBulkPlaced',
      'ce-source': '/postbox',
      'content-type': 'application/json',
    });
    expect(first.headers['ce-time']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(first.body).toEqual({ n: first.version });
    expect(await storedCount('postbox_nats-bulk')).toBe(ids.length);
  }, 300_000);

  it('nats-server killed mid-flow and restarted on its store: nothing lost, 0 duplicates stored, order kept; the circuit opened and closed, attempts during the outage bounded', async () => {
    const Ticked = eventType('NatsOutageTicked');
    await natsDestination(t.db, {
      name: 'nats-outage',
      filter: { types: ['NatsOutageTicked'] },
      timeoutMs: 500,
      retry: { initialDelayMs: 100, maxDelayMs: 1000, maxAttempts: 100 },
      breaker: { failureThreshold: 3, coolDownMs: 1000 },
      maxInFlight: 4,
    });
    const streams = Array.from({ length: 100 }, (_, i) => `t${i}`);
    const ids = await append(t.db, Ticked, streams, 30);
    await waitFor(
      'a part stored',
      async () => (await storedCount('postbox_nats-outage').catch(() => 0)) >= 300,
      60_000,
    );
    await nats.stop('SIGKILL');
    const outageStarted = Date.now();
    const before = attempts.length;
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const during = attempts.slice(before).filter((a) => a.destination === 'nats-outage');
    const outageMs = Date.now() - outageStarted;
    await nats.restart();
    await waitFor('lag 0', async () => (await getDestination(t.db, 'nats-outage')).lag === 0, 120_000);
    const messages = await readStream('postbox_nats-outage');
    expect(new Set(messages.map((message) => message.id))).toEqual(new Set(ids));
    expect(messages, 'JetStream stored no duplicate').toHaveLength(ids.length);
    expectStreamOrder(messages, 30);
    const failed = during.filter((a) => a.outcome !== 'delivered');
    console.info(
      `NATS outage of ${outageMs} ms: ${failed.length} failed publishes (${failed.filter((a) => a.outcome === 'deferred').length} opened the circuit)`,
    );
    expect(failed.length).toBeGreaterThan(0);
    expect(during.some((a) => a.circuit === 'open')).toBe(true);
    // Threshold + one per partition in flight when it opened + one probe per cool-down (+1 slack).
    expect(failed.length).toBeLessThanOrEqual(3 + 4 + Math.ceil(outageMs / 1000) + 1);
    const view = await getDestination(t.db, 'nats-outage');
    expect(view.circuit.state).toBe('closed');
    expect(view.deadLetters).toBe(0);
  }, 240_000);

  it('SIGKILL of the publishing process mid-batch: the new process publishes the uncommitted events again with the same Nats-Msg-Id and JetStream stores none twice', async () => {
    const crashDb = await createTestDatabase({ poolSize: 12 });
    const raw = new Map<string, number>();
    const subscription = reader.subscribe('crash.>', {
      callback: (_error, message) => {
        const id = message.headers?.get('ce-id') ?? '';
        raw.set(id, (raw.get(id) ?? 0) + 1);
      },
    });
    try {
      const Crash = eventType('NatsCrashTicked');
      await natsDestination(crashDb.db, {
        name: 'nats-crash',
        filter: { types: ['NatsCrashTicked'] },
        subject: 'crash.{streamType}.{type}',
        maxInFlight: 2,
      });
      const ids = await append(
        crashDb.db,
        Crash,
        Array.from({ length: 20 }, (_, i) => `c${i}`),
        200,
      );
      const first = await startWorker(crashDb.url);
      await waitFor('some published', async () => raw.size >= 600, 60_000).catch(async (error: unknown) => {
        console.warn(raw.size, JSON.stringify(await getDestination(crashDb.db, 'nats-crash')));
        throw error;
      });
      await stopWorker(first, 'SIGKILL');
      const publishedBeforeKill = new Set(raw.keys());
      const second = await startWorker(crashDb.url);
      try {
        await waitFor(
          'all stored',
          async () => (await storedCount('postbox_nats-crash')) >= ids.length,
          120_000,
        );
        await waitFor(
          'lag 0',
          async () => (await getDestination(crashDb.db, 'nats-crash')).lag === 0,
          30_000,
        );
      } finally {
        await stopWorker(second, 'SIGTERM');
      }
      await reader.flush();
      const republished = [...raw].filter(([id, count]) => count > 1 && publishedBeforeKill.has(id));
      console.info(`NATS crash: ${republished.length} events published twice across the SIGKILL`);
      // The killed process published them; its transaction never committed: the next one published them again.
      expect(republished.length).toBeGreaterThan(0);
      const messages = await readStream('postbox_nats-crash');
      expect(messages, 'JetStream stored each event once').toHaveLength(ids.length);
      expect(new Set(messages.map((message) => message.id))).toEqual(new Set(ids));
      expectStreamOrder(messages, 200);
    } finally {
      subscription.unsubscribe();
      await crashDb.drop();
    }
  }, 240_000);

  it('bad input gets a typed error naming the field and writes nothing: unreachable broker, wrong credentials, bad subject template, no stream for the subjects', async () => {
    const secured = await NatsServer.start({ user: 'postbox', pass: 'right-pass' });
    try {
      const base = { name: 'nats-bad', filter: { types: ['NatsBad'] } } as const;
      const create = (input: Partial<DestinationInput>) =>
        createDestination(t.db, { ...base, kind: 'nats', url: nats.url, ...input } as DestinationInput, {
          addressPolicy: { allowPrivate: true },
        });
      const refused = async (input: Partial<DestinationInput>, field: string, message: RegExp) => {
        const error = await create(input).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error, JSON.stringify(input)).toBeInstanceOf(ValidationError);
        expect((error as ValidationError).field).toBe(field);
        expect((error as ValidationError).message).toMatch(message);
      };
      await refused({ url: 'nats://127.0.0.1:1', createStream: true, timeoutMs: 1000 }, 'url', /url: /);
      await refused(
        { url: `nats://postbox:wrong-pass@127.0.0.1:${secured.port}`, createStream: true },
        'url',
        /auth/i,
      );
      await refused({ subject: 'orders.{nope}', createStream: true }, 'subject', /unknown placeholder/);
      await refused({ subject: 'orders.*.{type}', createStream: true }, 'subject', /wildcards/);
      await refused(
        { subject: 'nobody-captures.{type}' },
        'subject',
        /no JetStream stream captures nobody-captures\.\*/,
      );
      await refused({ url: 'http://127.0.0.1:4222' }, 'url', /nats:\/\//);
      await refused({ exchange: 'x', createStream: true }, 'exchange', /only for rabbitmq/);
      await expect(getDestination(t.db, 'nats-bad')).rejects.toThrow(/No destination/);
      const { rows } = await t.pool.query(`select 1 from outbox.consumers where name = 'nats-bad'`);
      expect(rows).toEqual([]);
    } finally {
      await secured.dispose();
    }
  }, 60_000);

  it('credentials are never returned; one connection per destination, closed when it is updated or deleted; test connects without publishing', async () => {
    const secured = await NatsServer.start({ user: 'postbox', pass: 's3cret-pass' });
    try {
      const Noted = eventType('NatsPooled');
      const created = await createDestination(
        t.db,
        {
          name: 'nats-pooled',
          kind: 'nats',
          url: `nats://postbox:s3cret-pass@127.0.0.1:${secured.port}`,
          filter: { types: ['NatsPooled'] },
          createStream: true,
        },
        { addressPolicy: { allowPrivate: true } },
      );
      expect(created.destination.url).toBe(`nats://127.0.0.1:${secured.port}`);
      expect(JSON.stringify(created.destination)).not.toContain('s3cret');
      expect(JSON.stringify(await getDestination(t.db, 'nats-pooled'))).not.toContain('s3cret');
      const { rows } = await t.pool.query<{ settings: unknown }>(
        `select settings from outbox.destinations where name = 'nats-pooled'`,
      );
      expect(JSON.stringify(rows)).not.toContain('s3cret');

      await append(t.db, Noted, ['p1', 'p2', 'p3'], 10);
      await waitFor(
        'delivered',
        async () => (await getDestination(t.db, 'nats-pooled')).delivered === 30,
        30_000,
      );
      const postboxConnections = async () =>
        (await secured.connections()).filter((connection) => connection.name === 'postbox').length;
      // 30 events on up to 8 partitions went through one connection.
      expect(await postboxConnections()).toBe(1);

      expect(await testDestination(t.db, 'nats-pooled')).toMatchObject({ ok: true, error: null });

      await updateDestination(t.db, 'nats-pooled', { subject: 'pooled2.{streamType}.{type}' });
      await append(t.db, Noted, ['p1'], 1);
      await waitFor(
        'delivered after update',
        async () => (await getDestination(t.db, 'nats-pooled')).delivered === 31,
        30_000,
      );
      await waitFor('the old connection closed', async () => (await postboxConnections()) === 1, 10_000);

      await deleteDestination(t.db, 'nats-pooled');
      await waitFor('closed after delete', async () => (await postboxConnections()) === 0, 10_000);
    } finally {
      await secured.dispose();
    }
  }, 60_000);

  it('the CLI manages a NATS destination: create with --kind nats --subject --create-stream (no signing secret printed), list without credentials, test, delete', async () => {
    const secured = await NatsServer.start({ user: 'cli', pass: 'cli-pass-123' });
    try {
      const postbox = (...args: string[]) =>
        runNode(
          [cliEntry, 'destinations', ...args],
          childEnv({ DATABASE_URL: t.url, LOG_LEVEL: 'error', POSTBOX_DESTINATIONS_ALLOW: '127.0.0.0/8' }),
        );
      const url = `nats://cli:cli-pass-123@127.0.0.1:${secured.port}`;
      const created = await postbox(
        'create',
        'nats-cli',
        '--kind',
        'nats',
        '--url',
        url,
        '--types',
        'NatsCli',
        '--subject',
        'cli.{streamType}.{type}',
        '--create-stream',
      );
      expect(created.code, created.stderr).toBe(0);
      expect(created.stdout).toContain('subject cli.{streamType}.{type}  (creates its stream)');
      expect(created.stdout).not.toContain('signing secret');
      const listed = await postbox('list', '--json');
      expect(JSON.parse(listed.stdout)).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            name: 'nats-cli',
            kind: 'nats',
            url: `nats://127.0.0.1:${secured.port}`,
          }),
        ]),
      );
      expect(listed.stdout).not.toContain('cli-pass-123');
      const tested = await postbox('test', 'nats-cli');
      expect(tested.code, tested.stderr).toBe(0);
      expect(tested.stdout).toMatch(/^ok/);
      const bad = await postbox(
        'create',
        'nats-cli-bad',
        '--kind',
        'nats',
        '--url',
        url,
        '--types',
        'NatsCli',
        '--subject',
        'a..b',
      );
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain('subject');
      expect((await postbox('delete', 'nats-cli')).stdout).toContain('nats-cli deleted');
    } finally {
      await secured.dispose();
    }
  }, 120_000);
});

async function startWorker(databaseUrl: string): Promise<ChildProcess> {
  const child = spawn(node, [workerScript, databaseUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
  workers.add(child);
  child.once('exit', () => workers.delete(child));
  let output = '';
  child.stdout?.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker exited early (${code})`)));
  });
  return child;
}

async function stopWorker(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}
