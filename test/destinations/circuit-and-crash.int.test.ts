import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createDestination,
  type DestinationInput,
  getDestination,
  listDeadLetters,
  type Postbox,
  startPostbox,
} from '../../src/engine/index.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import { type ReceivedRequest, WebhookReceiver } from '../helpers/webhook-receiver.ts';
import { appendInterleaved, type CounterEvent, counterEvent } from './destination-fixtures.ts';

const node = path.resolve('node_modules/.bin/node');
const workerScript = path.resolve('test/fixtures/destination-worker.ts');

let t: TestDatabase;
const receivers: WebhookReceiver[] = [];
const workers = new Set<ChildProcess>();

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 12 });
});
// A test that timed out leaves its worker processes running, and they would deliver the next test's events.
beforeEach(async () => {
  for (const worker of [...workers]) await stopWorker(worker, 'SIGKILL');
});
afterAll(async () => {
  for (const worker of workers) worker.kill('SIGKILL');
  for (const receiver of receivers) await receiver.stop();
  await t?.drop();
});

async function startWorker(): Promise<ChildProcess> {
  const child = spawn(node, [workerScript, t.url], { stdio: ['ignore', 'pipe', 'inherit'] });
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
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

const eventType = counterEvent;

async function receiver(): Promise<WebhookReceiver> {
  const r = new WebhookReceiver();
  await r.start();
  receivers.push(r);
  return r;
}

async function destination(
  r: WebhookReceiver,
  input: Partial<DestinationInput> & Pick<DestinationInput, 'name' | 'filter'>,
): Promise<void> {
  const created = await createDestination(
    t.db,
    { kind: 'webhook', url: r.url, ...input },
    { addressPolicy: { allowPrivate: true } },
  );
  r.secrets = [created.secret];
}

const append = (definition: CounterEvent, streams: readonly string[], perStream: number) =>
  appendInterleaved(t.db, definition, streams, perStream, 10);

/** The first acknowledgement of each webhook-id, per stream, must come in version order. */
function expectFirstAcksInOrder(requests: readonly ReceivedRequest[]): void {
  const seen = new Set<string>();
  const byStream = new Map<string, number[]>();
  for (const request of requests) {
    if (typeof request.answered !== 'number' || request.answered >= 300 || seen.has(request.webhookId))
      continue;
    seen.add(request.webhookId);
    const subject = String(request.event?.subject);
    byStream.set(subject, [...(byStream.get(subject) ?? []), Number(request.event?.streamversion)]);
  }
  for (const [subject, versions] of byStream) {
    expect(versions, subject).toEqual([...versions].sort((a, b) => a - b));
  }
}

describe('circuit breaker', () => {
  it('a receiver answering 503 for 20 s: the circuit opens, requests during the outage are bounded by the probe rate, it closes after recovery, everything arrives in order and nothing is dead-lettered', async () => {
    const Outage = eventType('OutageTicked');
    const r = await receiver();
    let down = true;
    r.respond = () => (down ? 503 : 200);
    const postbox: Postbox = await startPostbox({
      pool: t.pool,
      consumers: [],
      pollIntervalMs: 200,
      destinationAddressPolicy: { allowPrivate: true },
    });
    try {
      await destination(r, {
        name: 'outage',
        filter: { types: ['OutageTicked'] },
        maxInFlight: 4,
        // Few attempts: a probe or a wait that used an attempt would dead-letter events within the outage.
        retry: { maxAttempts: 4, initialDelayMs: 50, maxDelayMs: 200 },
        breaker: { failureThreshold: 3, coolDownMs: 1000 },
      });
      const streams = Array.from({ length: 20 }, (_, i) => `o${i}`);
      const ids = await append(Outage, streams, 3);
      await waitFor(
        'circuit open',
        async () => (await getDestination(t.db, 'outage')).circuit.state === 'open',
      );
      const openedAt = Date.now();
      const atOpen = r.requests.length;
      const more = await append(Outage, streams, 2);
      await new Promise((resolve) => setTimeout(resolve, 20_000));
      const duringOutage = r.requests.length - atOpen;
      // At most one probe per cool-down (1 s) over ~20 s, plus requests in flight when it opened.
      expect(duringOutage).toBeLessThanOrEqual(Math.ceil((Date.now() - openedAt) / 1000) + 1 + 4);
      console.info(
        `outage: ${atOpen} requests before the circuit opened, ${duringOutage} during ${((Date.now() - openedAt) / 1000).toFixed(1)} s open`,
      );
      const view = await getDestination(t.db, 'outage');
      expect(view.circuit.lastError).toBe('HTTP 503: status 503');
      down = false;
      await waitFor(
        'everything delivered',
        async () => new Set(r.acknowledged().map((req) => req.webhookId)).size === ids.length + more.length,
        30_000,
      );
      expect((await getDestination(t.db, 'outage')).circuit.state).toBe('closed');
      expect(await listDeadLetters(t.db, 'outage')).toEqual([]);
      expectFirstAcksInOrder(r.requests);
    } finally {
      await postbox.stop();
    }
  });

  it('two worker processes against one dead receiver: the probes across both stay at one per cool-down', {
    timeout: 180_000,
  }, async () => {
    const Dead = eventType('DeadTicked');
    const r = await receiver();
    r.respond = () => 500;
    await destination(r, {
      name: 'dead',
      filter: { types: ['DeadTicked'] },
      maxInFlight: 8,
      retry: { maxAttempts: 100, initialDelayMs: 20, maxDelayMs: 50 },
      breaker: { failureThreshold: 3, coolDownMs: 1000 },
    });
    const a = await startWorker();
    const b = await startWorker();
    try {
      await append(
        Dead,
        Array.from({ length: 40 }, (_, i) => `d${i}`),
        2,
      );
      await waitFor(
        'circuit open',
        async () => (await getDestination(t.db, 'dead')).circuit.state === 'open',
      );
      await new Promise((resolve) => setTimeout(resolve, 500)); // requests in flight at opening land
      const from = r.requests.length;
      const started = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 6000));
      const probes = r.requests.length - from;
      const seconds = (Date.now() - started) / 1000;
      console.info(
        `two processes, dead receiver: ${probes} requests in ${seconds.toFixed(1)} s (cool-down 1 s)`,
      );
      expect(probes).toBeGreaterThanOrEqual(Math.floor(seconds / 2)); // it does probe
      expect(probes).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    } finally {
      await stopWorker(a, 'SIGTERM');
      await stopWorker(b, 'SIGTERM');
    }
  });
});

describe('backpressure', () => {
  it('two worker processes and a slow receiver: requests in flight never exceed maxInFlight across both', {
    timeout: 180_000,
  }, async () => {
    const Slow = eventType('SlowBothTicked');
    const r = await receiver();
    r.delayMs = 100;
    await destination(r, { name: 'slow-both', filter: { types: ['SlowBothTicked'] }, maxInFlight: 3 });
    const a = await startWorker();
    const b = await startWorker();
    try {
      const ids = await append(
        Slow,
        Array.from({ length: 60 }, (_, i) => `b${i}`),
        1,
      );
      await waitFor('delivered', async () => r.acknowledged().length === ids.length, 30_000);
      expect(r.maxInFlight).toBeLessThanOrEqual(3);
      expect(r.maxInFlight).toBeGreaterThanOrEqual(2);
    } finally {
      await stopWorker(a, 'SIGTERM');
      await stopWorker(b, 'SIGTERM');
    }
  });
});

describe('crash', () => {
  it('SIGKILL of the delivering process mid-batch: the new process redelivers the unacknowledged batch with the same webhook-ids; nothing is lost', {
    timeout: 180_000,
  }, async () => {
    const Crash = eventType('CrashTicked');
    const r = await receiver();
    r.delayMs = 30;
    await destination(r, { name: 'crashy', filter: { types: ['CrashTicked'] }, maxInFlight: 2 });
    const ids = await append(
      Crash,
      Array.from({ length: 10 }, (_, i) => `c${i}`),
      20,
    );
    const first = await startWorker();
    await waitFor('some delivered', async () => r.acknowledged().length >= 30, 20_000);
    await stopWorker(first, 'SIGKILL');
    const beforeKill = new Set(r.acknowledged().map((req) => req.webhookId));
    const countBefore = r.requests.length;
    const second = await startWorker();
    try {
      await waitFor(
        'all delivered',
        async () => new Set(r.acknowledged().map((req) => req.webhookId)).size === ids.length,
        60_000,
      );
      const after = r.requests.slice(countBefore);
      const redelivered = after.filter((req) => beforeKill.has(req.webhookId));
      // The killed batch was acknowledged by the receiver but never committed: sent again, same ids.
      expect(redelivered.length).toBeGreaterThan(0);
      expect(new Set(r.requests.map((req) => req.webhookId))).toEqual(new Set(ids));
      expect(r.requests.every((req) => req.verifiedWith === 0)).toBe(true);
      expectFirstAcksInOrder(r.requests);
    } finally {
      await stopWorker(second, 'SIGTERM');
    }
  });
});
