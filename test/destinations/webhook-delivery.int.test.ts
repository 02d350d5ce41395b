import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConflictError,
  type CreatedDestination,
  createDestination,
  type DestinationInput,
  deleteDestination,
  getDestination,
  type Logger,
  listDeadLetters,
  listDestinationAttempts,
  type Postbox,
  pauseDestination,
  redriveDeadLetters,
  resumeDestination,
  rotateDestinationSecret,
  startPostbox,
  ValidationError,
} from '../../src/engine/index.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import { type ReceivedRequest, WebhookReceiver } from '../helpers/webhook-receiver.ts';
import { appendInterleaved, type CounterEvent, counterEvent } from './destination-fixtures.ts';

let t: TestDatabase;
let postbox: Postbox;
/** Engine warnings other than expected delivery failures: printed, so a flaky failure says why. */
const unexpected: string[] = [];
const expected = /^(handler failed|destination: )/;
const testLogger: Logger = {
  child: () => testLogger,
  debug: () => {},
  info: () => {},
  warn: (object, message) => {
    if (!expected.test(message ?? '')) unexpected.push(`${message} ${JSON.stringify(object)}`);
  },
  error: (object, message) => unexpected.push(`${message} ${JSON.stringify(object)}`),
  fatal: (object, message) => unexpected.push(`${message} ${JSON.stringify(object)}`),
};
const receivers: WebhookReceiver[] = [];

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 20 });
  postbox = await startPostbox({
    pool: t.pool,
    consumers: [],
    pollIntervalMs: 200,
    destinationAddressPolicy: { allowPrivate: true },
    logger: testLogger,
  });
});
afterAll(async () => {
  if (unexpected.length) console.warn(`engine warnings:\n${unexpected.slice(0, 20).join('\n')}`);
  await postbox?.stop();
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

async function destination(
  r: WebhookReceiver,
  input: Partial<DestinationInput> & Pick<DestinationInput, 'name' | 'filter'>,
): Promise<CreatedDestination> {
  const created = await createDestination(
    t.db,
    { kind: 'webhook', url: r.url, ...input },
    { addressPolicy: { allowPrivate: true } },
  );
  r.secrets = [created.secret];
  return created;
}

const append = (definition: CounterEvent, streams: readonly string[], perStream: number) =>
  appendInterleaved(t.db, definition, streams, perStream, 10);

/**
 * Checks that every stream's events were first acknowledged in version order. A later acknowledgement of
 * the same webhook-id (a redelivery after a lost commit, which receivers deduplicate) is not an order
 * violation; how many there may be is each test's own check.
 */
function expectStreamOrder(acknowledged: readonly ReceivedRequest[]): Map<string, number[]> {
  const byStream = new Map<string, number[]>();
  const seen = new Set<string>();
  for (const request of acknowledged) {
    if (seen.has(request.webhookId)) continue;
    seen.add(request.webhookId);
    const subject = String(request.event?.subject);
    byStream.set(subject, [...(byStream.get(subject) ?? []), Number(request.event?.streamversion)]);
  }
  for (const [subject, versions] of byStream) {
    const sorted = [...versions].sort((a, b) => a - b);
    expect(versions, `acknowledged order of ${subject}`).toEqual(sorted);
    expect(new Set(versions).size, `each version of ${subject} acknowledged once`).toBe(versions.length);
  }
  return byStream;
}

describe('webhook destinations', () => {
  it('5,000 events on 200 streams, with 500s on 5 % of requests: every event arrives signed, each stream in version order, duplicates only retries of one webhook-id', async () => {
    const Placed = eventType('BulkPlaced');
    const r = await receiver();
    let calls = 0;
    r.respond = () => (++calls % 20 === 7 ? 500 : 200);
    await destination(r, {
      name: 'bulk',
      filter: { types: ['BulkPlaced'] },
      retry: { initialDelayMs: 300, maxDelayMs: 600, maxAttempts: 50 },
      breaker: { failureThreshold: 1000 },
    });
    const streams = Array.from({ length: 200 }, (_, i) => `s${i}`);
    const ids = await append(Placed, streams, 25);
    await waitFor(
      'all 5,000 acknowledged',
      async () => new Set(r.acknowledged().map((req) => req.webhookId)).size === ids.length,
      120_000,
    );
    const acknowledged = r.acknowledged();
    expect(new Set(acknowledged.map((req) => req.webhookId))).toEqual(new Set(ids));
    // Every request of the run verified with standardwebhooks, and carried a CloudEvent of the event.
    expect(r.requests.every((req) => req.verifiedWith === 0)).toBe(true);
    for (const req of r.requests.slice(0, 50)) {
      expect(req.event).toMatchObject({
        specversion: '1.0',
        id: req.webhookId,
        type: 'BulkPlaced',
        source: '/postbox',
      });
      expect(req.headers['content-type']).toContain('application/cloudevents+json');
    }
    const byStream = expectStreamOrder(acknowledged);
    expect(byStream.size).toBe(200);
    // Duplicates are only retries of one webhook-id. A second acknowledgement of an id happens only when a
    // delivery transaction is lost after the receiver's 2xx (a timeout on a loaded machine); a batch sent
    // again after a failure would produce hundreds here.
    const acknowledgedIds = acknowledged.map((req) => req.webhookId);
    const duplicates = acknowledgedIds.length - new Set(acknowledgedIds).size;
    console.info(`bulk webhook run: ${duplicates} duplicate acknowledgement(s) of 5,000 events`);
    expect(duplicates).toBeLessThanOrEqual(25);
    const failedIds = new Set(r.requests.filter((req) => req.answered !== 200).map((req) => req.webhookId));
    expect(failedIds.size).toBeGreaterThan(100);
    expect((await listDeadLetters(t.db, 'bulk')).length).toBe(0);
  });

  it('a receiver answering 500 for one stream does not hold up the other streams; after the fix the stream catches up in order', async () => {
    const Moved = eventType('OneBadMoved');
    const r = await receiver();
    let broken = true;
    r.respond = (req) => (broken && req.event?.subject === 'onebadmoved/bad' ? 500 : 200);
    await destination(r, {
      name: 'one-bad',
      filter: { types: ['OneBadMoved'] },
      maxInFlight: 1, // one partition: the bad stream and the good ones share it
      retry: { initialDelayMs: 50, maxDelayMs: 100, maxAttempts: 100 },
      breaker: { failureThreshold: 1000 },
    });
    await append(Moved, ['bad', 'good1', 'good2'], 5);
    await waitFor('the good streams delivered', async () => r.acknowledged().length === 10, 20_000);
    expect(r.acknowledged().every((req) => req.event?.subject !== 'onebadmoved/bad')).toBe(true);
    const badTries = r.requests.filter((req) => req.event?.subject === 'onebadmoved/bad');
    // Only the bad stream's first event was tried: its later events wait behind it.
    expect(new Set(badTries.map((req) => req.event?.streamversion))).toEqual(new Set([1]));
    broken = false;
    await waitFor('the bad stream delivered', async () => r.acknowledged().length === 15, 20_000);
    expectStreamOrder(r.acknowledged());
  });

  it('a 400 is retried per the policy then dead-lettered with its status and body; after the fix, a redrive delivers in stream order', async () => {
    const Noted = eventType('RejectNoted');
    const r = await receiver();
    let reject = true;
    r.respond = (req) =>
      reject && req.event?.streamversion === 2 ? { status: 400, body: 'missing field customerId' } : 200;
    await destination(r, {
      name: 'rejecting',
      filter: { types: ['RejectNoted'] },
      retry: { initialDelayMs: 20, maxDelayMs: 50, maxAttempts: 3 },
    });
    await append(Noted, ['a', 'b'], 3);
    await waitFor(
      'two dead letters',
      async () => (await listDeadLetters(t.db, 'rejecting')).length === 2,
      20_000,
    );
    const dead = await listDeadLetters(t.db, 'rejecting');
    expect(dead.map((letter) => letter.last_error)).toEqual([
      'HTTP 400: missing field customerId',
      'HTTP 400: missing field customerId',
    ]);
    expect(dead.every((letter) => letter.attempts === 3)).toBe(true);
    // Per the policy (dead_letter) the streams went on: versions 1 and 3 delivered.
    await waitFor('versions 1 and 3 delivered', async () => r.acknowledged().length === 4);
    reject = false;
    await redriveDeadLetters(t.db, 'rejecting');
    await waitFor('redriven', async () => r.acknowledged().length === 6, 20_000);
    // The receiver's 2xx comes before the redrive's transaction commits.
    await waitFor('dead letters closed', async () => (await listDeadLetters(t.db, 'rejecting')).length === 0);
    const redriven = r.acknowledged().slice(4);
    expect(redriven.map((req) => req.event?.streamversion)).toEqual([2, 2]);
  });

  it('410 Gone disables the destination: nothing more is sent until it is resumed', async () => {
    const Left = eventType('GoneLeft');
    const r = await receiver();
    let gone = true;
    r.respond = () => (gone ? 410 : 200);
    await destination(r, { name: 'gone', filter: { types: ['GoneLeft'] } });
    await append(Left, ['x'], 3);
    await waitFor('disabled', async () => (await getDestination(t.db, 'gone')).state === 'disabled', 10_000);
    const view = await getDestination(t.db, 'gone');
    expect(view.stateReason).toContain('410');
    expect(view.deadLetters).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(r.requests.length).toBe(1);
    gone = false;
    await resumeDestination(t.db, 'gone');
    await waitFor('delivered after resume', async () => r.acknowledged().length === 3, 10_000);
    expectStreamOrder(r.acknowledged());
  });

  it('a receiver that never answers: the request times out and is retried; the other streams keep flowing', async () => {
    const Hung = eventType('HangTicked');
    const r = await receiver();
    let hang = true;
    r.respond = (req) => (hang && req.event?.subject === 'hangticked/slow' ? 'hang' : 200);
    await destination(r, {
      name: 'hanging',
      filter: { types: ['HangTicked'] },
      timeoutMs: 300,
      maxInFlight: 4,
      retry: { initialDelayMs: 50, maxDelayMs: 100, maxAttempts: 100 },
      breaker: { failureThreshold: 1000 },
    });
    const others = Array.from({ length: 12 }, (_, i) => `fast${i}`);
    await append(Hung, ['slow', ...others], 4);
    await waitFor('the other streams delivered', async () => r.acknowledged().length === 48, 20_000);
    await waitFor(
      'the slow stream retried',
      async () => r.requests.filter((req) => req.event?.subject === 'hangticked/slow').length >= 3,
    );
    const attempts = await listDestinationAttempts(t.db, 'hanging', 200);
    expect(attempts.some((a) => a.error === 'no response within 300 ms')).toBe(true);
    hang = false;
    await waitFor('the slow stream delivered', async () => r.acknowledged().length === 52, 20_000);
    expectStreamOrder(r.acknowledged());
  });

  it('secret rotation: during the overlap both signatures verify; after it only the new one is sent', async () => {
    const Rotated = eventType('RotateTicked');
    const r = await receiver();
    const created = await destination(r, { name: 'rotating', filter: { types: ['RotateTicked'] } });
    const old = created.secret;
    const rotated = await rotateDestinationSecret(t.db, 'rotating', { overlapMs: 2500 });
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(old);
    await new Promise((resolve) => setTimeout(resolve, 400)); // the change reaches the process (NOTIFY)
    await append(Rotated, ['r'], 1);
    await waitFor('delivered during the overlap', async () => r.acknowledged().length === 1);
    const during = r.requests[0] as ReceivedRequest;
    r.secrets = [old];
    expect(verifies(r, during, old)).toBe(true);
    expect(verifies(r, during, rotated.secret)).toBe(true);
    expect(String(during.headers['webhook-signature']).split(' ')).toHaveLength(2);
    await new Promise((resolve) => setTimeout(resolve, 2600));
    await append(Rotated, ['r'], 1);
    await waitFor('delivered after the overlap', async () => r.requests.length === 2);
    const after = r.requests[1] as ReceivedRequest;
    expect(verifies(r, after, rotated.secret)).toBe(true);
    expect(verifies(r, after, old)).toBe(false);
  });

  it('created at runtime it delivers within a second without a restart; paused it stops; deleted it stops and its state goes', async () => {
    const Live = eventType('LiveTicked');
    const r = await receiver();
    const started = Date.now();
    await destination(r, { name: 'live', filter: { types: ['LiveTicked'] } });
    await append(Live, ['l'], 1);
    await waitFor('delivered', async () => r.acknowledged().length === 1, 5000);
    expect(Date.now() - started).toBeLessThan(1000);

    await pauseDestination(t.db, 'live');
    expect((await getDestination(t.db, 'live')).state).toBe('paused');
    await append(Live, ['l'], 2);
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(r.requests.length).toBe(1);
    expect((await getDestination(t.db, 'live')).lag).toBe(2);
    await resumeDestination(t.db, 'live');
    await waitFor('delivered after resume', async () => r.acknowledged().length === 3, 5000);

    await deleteDestination(t.db, 'live');
    await append(Live, ['l'], 1);
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(r.requests.length).toBe(3);
    const leftovers = await sql<{ n: number }>`
      select (select count(*) from outbox.consumers where name = 'live')
           + (select count(*) from outbox.consumer_partitions where consumer = 'live')
           + (select count(*) from outbox.destination_secrets where destination = 'live')
           + (select count(*) from outbox.destination_circuits where destination = 'live')
           + (select count(*) from outbox.destination_attempts where destination = 'live') as n`.execute(
      t.db,
    );
    expect(Number(leftovers.rows[0]?.n)).toBe(0);
  });

  it('pausing stops a batch in flight at its next event; resuming delivers the rest in order', async () => {
    const Paused = eventType('PauseMidTicked');
    const r = await receiver();
    r.delayMs = 200;
    await destination(r, { name: 'pause-mid', filter: { types: ['PauseMidTicked'] }, maxInFlight: 1 });
    await append(Paused, ['p'], 30);
    await waitFor('a few delivered', async () => r.acknowledged().length >= 3, 10_000);
    await pauseDestination(t.db, 'pause-mid');
    const atPause = r.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // The request in flight finishes, and perhaps one sent before the change reached the process.
    expect(r.requests.length - atPause).toBeLessThanOrEqual(2);
    await resumeDestination(t.db, 'pause-mid');
    await waitFor('the rest delivered', async () => r.acknowledged().length >= 30, 30_000);
    expectStreamOrder(r.acknowledged());
  });

  it('bad input gets a typed error and writes nothing', async () => {
    const before = await sql<{ n: number }>`select count(*)::int as n from outbox.consumers`.execute(t.db);
    const base = {
      name: 'bad-input',
      kind: 'webhook' as const,
      url: 'https://example.com/hook',
      filter: { types: ['A'] },
    };
    const cases: Array<[Partial<DestinationInput> | Record<string, unknown>, string]> = [
      [{ url: 'not a url' }, 'url'],
      [{ url: 'ftp://example.com/x' }, 'url'],
      [{ kind: 'carrier-pigeon' }, 'kind'],
      [{ filter: { types: [] } }, 'filter.types'],
      [{ filter: { types: ['A'], streamTypes: [] } }, 'filter.streamTypes'],
      [{ name: 'Bad Name' }, 'name'],
      [{ headers: { 'webhook-id': 'x' } }, 'headers'],
    ];
    for (const [patch, field] of cases) {
      const error = await createDestination(t.db, { ...base, ...patch } as DestinationInput).catch(
        (e: unknown) => e,
      );
      expect(error, JSON.stringify(patch)).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).field, JSON.stringify(patch)).toBe(field);
    }
    // A private address, outside development (the default policy).
    for (const url of [
      'http://127.0.0.1:8080/x',
      'http://10.1.2.3/x',
      'http://[::1]/x',
      'http://169.254.169.254/latest',
      'http://localhost/x',
    ]) {
      const error = await createDestination(t.db, { ...base, url }).catch((e: unknown) => e);
      expect(error, url).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).field).toBe('url');
    }
    // A duplicate name.
    const r = await receiver();
    await destination(r, { name: 'dup', filter: { types: ['A'] } });
    const duplicate = await destination(r, { name: 'dup', filter: { types: ['B'] } }).catch(
      (e: unknown) => e,
    );
    expect(duplicate).toBeInstanceOf(ConflictError);
    const after = await sql<{ n: number }>`select count(*)::int as n from outbox.consumers`.execute(t.db);
    expect(after.rows[0]?.n).toBe((before.rows[0]?.n ?? 0) + 1);
    expect((await getDestination(t.db, 'dup')).filter.types).toEqual(['A']);
  });
});

function verifies(_r: WebhookReceiver, request: ReceivedRequest, secret: string): boolean {
  try {
    new Webhook(secret).verify(request.body, request.headers as Record<string, string>);
    return true;
  } catch {
    return false;
  }
}
