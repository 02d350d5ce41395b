import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDestination,
  type DestinationInput,
  defineConsumer,
  defineDestination,
  getDestination,
  listDestinationAttempts,
  type Postbox,
  startPostbox,
  updateDestination,
} from '../../src/engine/index.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import { WebhookReceiver } from '../helpers/webhook-receiver.ts';
import { counterEvent } from './destination-fixtures.ts';

let t: TestDatabase;
const receivers: WebhookReceiver[] = [];
const running: Postbox[] = [];

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 20 });
});
afterAll(async () => {
  for (const postbox of running) await postbox.stop();
  for (const receiver of receivers) await receiver.stop();
  await t?.drop();
});

const eventType = counterEvent;

async function receiver(): Promise<WebhookReceiver> {
  const r = new WebhookReceiver();
  await r.start();
  receivers.push(r);
  return r;
}

async function start(options: Partial<Parameters<typeof startPostbox>[0]> = {}): Promise<Postbox> {
  const postbox = await startPostbox({
    pool: t.pool,
    consumers: [],
    pollIntervalMs: 200,
    destinationAddressPolicy: { allowPrivate: true },
    ...options,
  } as Parameters<typeof startPostbox>[0]);
  running.push(postbox);
  return postbox;
}

async function create(
  r: WebhookReceiver,
  input: Partial<DestinationInput> & Pick<DestinationInput, 'name' | 'filter'>,
) {
  const created = await createDestination(
    t.db,
    { kind: 'webhook', url: r.url, ...input },
    { addressPolicy: { allowPrivate: true } },
  );
  r.secrets = [created.secret];
}

describe('destinations as a library', () => {
  it('a destination declared in code (defineDestination) is registered at start, delivers CloudEvents with the stream, version, position and correlation extensions, and signs with the secret given in code', async () => {
    const Declared = eventType('DeclaredTicked');
    const r = await receiver();
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    r.secrets = [secret];
    const postbox = await start({
      destinations: [
        defineDestination({
          name: 'declared',
          kind: 'webhook',
          url: r.url,
          filter: { types: ['DeclaredTicked'] },
          secret,
        }),
      ],
    });
    expect((await getDestination(t.db, 'declared')).declaredIn).toBe('code');
    const event = Declared.create(
      's1',
      { n: 7 },
      { metadata: { correlationId: 'corr-1', causationId: 'cause-1' } },
    );
    await t.db.transaction().execute((trx) => appendEvents(trx, [event]));
    await waitFor('delivered', async () => r.acknowledged().length === 1, 5000);
    const request = r.requests[0];
    expect(request?.verifiedWith).toBe(0);
    const { rows } = await sql<{
      position: string;
    }>`select position::text from outbox.events where id = ${event.id}`.execute(t.db);
    expect(request?.event).toMatchObject({
      specversion: '1.0',
      id: event.id,
      source: '/postbox',
      type: 'DeclaredTicked',
      subject: 'declaredticked/s1',
      datacontenttype: 'application/json',
      data: { n: 7 },
      streamtype: 'declaredticked',
      streamid: 's1',
      streamversion: 1,
      logposition: rows[0]?.position,
      correlationid: 'corr-1',
      causationid: 'cause-1',
    });
    expect(typeof request?.event?.time).toBe('string');
    await postbox.stop();
    running.pop();
    // Started again with the same code: registered again without a conflict.
    await start({
      destinations: [
        defineDestination({
          name: 'declared',
          kind: 'webhook',
          url: r.url,
          filter: { types: ['DeclaredTicked'] },
          secret,
        }),
      ],
    });
  });

  it('a slow receiver never sees more requests in flight than the destination allows', async () => {
    const Slow = eventType('SlowTicked');
    const r = await receiver();
    r.delayMs = 50;
    await start();
    await create(r, { name: 'slow', filter: { types: ['SlowTicked'] }, maxInFlight: 3 });
    const events = Array.from({ length: 60 }, (_, i) => Slow.create(`s${i}`, { n: i }));
    await t.db.transaction().execute((trx) => appendEvents(trx, events));
    await waitFor('delivered', async () => r.acknowledged().length === 60, 30_000);
    expect(r.maxInFlight).toBeLessThanOrEqual(3);
    expect(r.maxInFlight).toBeGreaterThanOrEqual(2); // and it does use the parallelism
  });

  it("Retry-After is honoured: the retry waits at least the receiver's delay", async () => {
    const Later = eventType('LaterTicked');
    const r = await receiver();
    let first = true;
    r.respond = () => {
      if (!first) return 200;
      first = false;
      return { status: 429, headers: { 'retry-after': '2' } };
    };
    await create(r, {
      name: 'later',
      filter: { types: ['LaterTicked'] },
      retry: { initialDelayMs: 10, maxDelayMs: 20 },
    });
    await t.db.transaction().execute((trx) => appendEvents(trx, [Later.create('x', { n: 1 })]));
    await waitFor('delivered', async () => r.acknowledged().length === 1, 10_000);
    const [rejected, accepted] = r.requests;
    expect((accepted?.at ?? 0) - (rejected?.at ?? 0)).toBeGreaterThanOrEqual(1900);
  });

  it('the address guard checks the address connected to: a destination whose name resolves to a private address at delivery (DNS rebinding) gets nothing', async () => {
    const Rebound = eventType('ReboundTicked');
    const r = await receiver();
    // The row exists as if the name had resolved to a public address when it was created.
    await createDestination(
      t.db,
      {
        name: 'rebound',
        kind: 'webhook',
        url: r.url.replace('127.0.0.1', 'localhost'),
        filter: { types: ['ReboundTicked'] },
        retry: { initialDelayMs: 50, maxDelayMs: 100 },
        breaker: { failureThreshold: 1000 },
      },
      { addressPolicy: { allowPrivate: true } },
    );
    for (const postbox of running.splice(0)) await postbox.stop();
    await start({ destinationAddressPolicy: {} });
    await t.db.transaction().execute((trx) => appendEvents(trx, [Rebound.create('x', { n: 1 })]));
    await waitFor('a refused attempt', async () =>
      (await listDestinationAttempts(t.db, 'rebound')).some((a) => a.error?.includes('is not allowed')),
    );
    expect(r.requests.length).toBe(0);
  });

  it('updateDestination takes effect in the running process: a new URL and filter receive the next events', async () => {
    const Moved = eventType('MovedTicked');
    const Other = eventType('OtherTicked');
    for (const postbox of running.splice(0)) await postbox.stop(); // the previous test's denies loopback
    await start();
    const before = await receiver();
    const after = await receiver();
    await create(before, { name: 'moving', filter: { types: ['MovedTicked'] } });
    after.secrets = before.secrets;
    await t.db.transaction().execute((trx) => appendEvents(trx, [Moved.create('m', { n: 1 })]));
    await waitFor('first delivered', async () => before.acknowledged().length === 1, 5000);
    const updated = await updateDestination(
      t.db,
      'moving',
      { url: after.url, filter: { types: ['MovedTicked', 'OtherTicked'] } },
      { addressPolicy: { allowPrivate: true } },
    );
    expect(updated.filter.types).toEqual(['MovedTicked', 'OtherTicked']);
    await new Promise((resolve) => setTimeout(resolve, 400));
    await t.db
      .transaction()
      .execute((trx) => appendEvents(trx, [Moved.create('m', { n: 2 }), Other.create('o', { n: 1 })]));
    await waitFor('delivered to the new URL', async () => after.acknowledged().length === 2, 5000);
    expect(before.requests.length).toBe(1);
    expect(after.requests.every((req) => req.verifiedWith === 0)).toBe(true);
  });

  it('/metrics: requests per destination by result, latency, circuit state and consecutive failures', async () => {
    const metrics = createMetrics(t.db, { defaultMetrics: false, cacheMs: 0 });
    const base = { destination: 'moving', eventId: '00000000-0000-0000-0000-000000000001', attempt: 1 };
    metrics.onDestinationAttempt({
      ...base,
      outcome: 'delivered',
      status: 204,
      durationMs: 12,
      error: undefined,
      responseSnippet: undefined,
      at: new Date(),
      verdict: 'delivered',
      circuit: undefined,
    });
    metrics.onDestinationAttempt({
      ...base,
      outcome: 'failed',
      status: 503,
      durationMs: 30,
      error: 'HTTP 503',
      responseSnippet: undefined,
      at: new Date(),
      verdict: 'unavailable',
      circuit: 'closed',
    });
    metrics.onDestinationAttempt({
      ...base,
      outcome: 'failed',
      status: undefined,
      durationMs: 300,
      error: 'no response',
      responseSnippet: undefined,
      at: new Date(),
      verdict: 'unavailable',
      circuit: 'closed',
    });
    await sql`update outbox.destination_circuits set state = 'open', consecutive_failures = 7 where destination = 'moving'`.execute(
      t.db,
    );
    const text = await metrics.render();
    expect(text).toContain('postbox_destination_requests_total{destination="moving",result="2xx"} 1');
    expect(text).toContain('postbox_destination_requests_total{destination="moving",result="5xx"} 1');
    expect(text).toContain('postbox_destination_requests_total{destination="moving",result="no_response"} 1');
    expect(text).toContain('postbox_destination_request_duration_seconds_count{destination="moving"} 3');
    expect(text).toContain('postbox_destination_circuit_state{destination="moving"} 2');
    expect(text).toContain('postbox_destination_consecutive_failures{destination="moving"} 7');
    expect(text).toMatch(/postbox_consumer_lag_events\{consumer="moving"\} \d+/);
  });

  it("a failing request does not make the destination's transaction hold back the log for other consumers while it sends more", async () => {
    const Held = eventType('HeldTicked');
    const Probe = eventType('ProbeTicked');
    const r = await receiver();
    r.delayMs = 500;
    r.respond = (req) => (req.event?.subject === 'heldticked/x' ? 500 : 200);
    let handledAt: number | undefined;
    for (const postbox of running.splice(0)) await postbox.stop();
    await start({
      consumers: [
        defineConsumer({
          name: 'horizon-probe',
          on: [Probe],
          startFrom: 'now',
          async handle() {
            handledAt = Date.now();
          },
        }),
      ],
    });
    await create(r, {
      name: 'held',
      filter: { types: ['HeldTicked'] },
      maxInFlight: 1,
      retry: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
    });
    // One partition: x fails first, then 20 slow requests follow in the same partition.
    const events = [
      Held.create('x', { n: 0 }),
      ...Array.from({ length: 20 }, (_, i) => Held.create(`y${i}`, { n: i })),
    ];
    await t.db.transaction().execute((trx) => appendEvents(trx, events));
    // The receiver answered x's 500; the destination records the failure (a write: its transaction now
    // has an xid) and has 20 requests of 0.5 s left in the partition.
    await waitFor('the failing request answered', async () => r.requests.some((req) => req.answered === 500));
    await new Promise((resolve) => setTimeout(resolve, 800));
    const appended = Date.now();
    await t.db.transaction().execute((trx) => appendEvents(trx, [Probe.create('p', { n: 1 })]));
    await waitFor('the other consumer handled its event', async () => handledAt !== undefined, 30_000);
    // The destination still has ~10 s of requests to send; the other consumer must not wait for them.
    expect((handledAt ?? 0) - appended).toBeLessThan(4000);
    expect(r.acknowledged().length).toBeLessThan(20);
  });
});
