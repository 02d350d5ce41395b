import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Postbox, startPostbox } from '../../src/engine/index.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { defineEvent } from '../../src/engine/outbox/event.ts';
import type { GraphqlApi } from '../../src/graphql/yoga.ts';
import { createTestApi, gql, gqlData } from '../graphql/graphql-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import { WebhookReceiver } from '../helpers/webhook-receiver.ts';

let t: TestDatabase;
let postbox: Postbox;
let api: GraphqlApi;
let production: GraphqlApi;
let r: WebhookReceiver;

const Pinged = defineEvent({
  type: 'GqlPinged',
  streamType: 'gql',
  schema: z.object({ n: z.number().int() }),
});

beforeAll(async () => {
  t = await createTestDatabase();
  postbox = await startPostbox({
    pool: t.pool,
    consumers: [],
    pollIntervalMs: 200,
    destinationAddressPolicy: { allow: ['127.0.0.0/8'] },
  });
  // Development lets loopback through; production's default policy does not.
  api = createTestApi(t.db, t.url, { destinationAddressPolicy: { allow: ['127.0.0.0/8'] } });
  production = createTestApi(t.db, t.url);
  r = new WebhookReceiver();
  await r.start();
});
afterAll(async () => {
  await api?.close?.();
  await production?.close?.();
  await postbox?.stop();
  await r?.stop();
  await t?.drop();
});

const CREATE = /* GraphQL */ `
  mutation Create($input: CreateDestinationInput!) {
    createDestination(input: $input) {
      __typename
      ... on CreateDestinationSuccess { secret destination { name kind url state circuit { state } lag deadLetters lastError headerNames } }
      ... on Error { code message }
      ... on ValidationError { field }
      ... on ConflictError { field }
    }
  }
`;

const DESTINATION = /* GraphQL */ `
  query One($name: String!) {
    destination(name: $name) {
      name kind url state stateReason maxInFlight timeoutMs headerNames
      filter { types streamTypes }
      circuit { state since consecutiveFailures lastError }
      lag deadLetters delivered lastError
      attempts(limit: 5) { eventId outcome status durationMs }
    }
  }
`;

async function count(): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select (select count(*) from outbox.consumers) + (select count(*) from outbox.destinations)
         + (select count(*) from outbox.destination_secrets) as n`.execute(t.db);
  return Number(rows[0]?.n);
}

describe('destinations through GraphQL (admin)', () => {
  it('createDestination returns the secret once; the destination delivers within a second, no restart; queries never return secrets', async () => {
    const data = await gqlData<{
      createDestination: { __typename: string; secret: string; destination: Record<string, unknown> };
    }>(api, CREATE, {
      input: {
        name: 'orders-hook',
        kind: 'WEBHOOK',
        url: r.url,
        filter: { types: ['GqlPinged'] },
        startFrom: 'NOW',
        headers: [{ name: 'authorization', value: 'Bearer top-secret-token' }],
      },
    });
    expect(data.createDestination.__typename).toBe('CreateDestinationSuccess');
    expect(data.createDestination.secret).toMatch(/^whsec_/);
    expect(data.createDestination.destination).toMatchObject({
      name: 'orders-hook',
      kind: 'WEBHOOK',
      url: r.url,
      state: 'ACTIVE',
      circuit: { state: 'CLOSED' },
      lag: 0,
      deadLetters: 0,
      lastError: null,
      headerNames: ['authorization'],
    });
    r.secrets = [data.createDestination.secret];
    // From the creation's commit (the mutation answered) to the first delivery: no restart, one NOTIFY.
    const started = Date.now();
    await t.db.transaction().execute((trx) => appendEvents(trx, [Pinged.create('a', { n: 1 })]));
    await waitFor('delivered', async () => r.acknowledged().length === 1, 5000);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(r.requests[0]?.verifiedWith).toBe(0);
    expect(r.requests[0]?.headers.authorization).toBe('Bearer top-secret-token');

    const listed = await gql(api, DESTINATION, { name: 'orders-hook' });
    const all = await gql(api, '{ destinations { name url headerNames previousSecretExpiresAt } }');
    for (const response of [listed, all]) {
      const text = JSON.stringify(response.body);
      expect(text).not.toContain(data.createDestination.secret);
      expect(text).not.toContain('top-secret-token');
    }
    await waitFor('the attempt is logged', async () => {
      const view = await gqlData<{ destination: { attempts: Array<{ outcome: string; status: number }> } }>(
        api,
        DESTINATION,
        { name: 'orders-hook' },
      );
      return view.destination.attempts[0]?.status === 200;
    });
  });

  it('bad input — invalid URL, bad filter, duplicate name, private address in production — gets a typed error and writes nothing', async () => {
    const before = await count();
    const base = { name: 'bad', kind: 'WEBHOOK', url: 'https://example.com/h', filter: { types: ['A'] } };
    const cases: Array<[Record<string, unknown>, string, string | null, GraphqlApi]> = [
      [{ url: 'not-a-url' }, 'VALIDATION_FAILED', 'url', api],
      [{ filter: { types: [] } }, 'VALIDATION_FAILED', 'filter.types', api],
      [{ retry: { maxAttempts: 0 } }, 'VALIDATION_FAILED', 'retry.maxAttempts', api],
      [{ name: 'orders-hook' }, 'CONFLICT', 'name', api],
      [{ url: 'http://127.0.0.1:9/x' }, 'VALIDATION_FAILED', 'url', production],
      [{ url: 'http://[::ffff:10.0.0.1]/x' }, 'VALIDATION_FAILED', 'url', production],
    ];
    for (const [patch, code, field, target] of cases) {
      const response = await gql<{ createDestination: { __typename: string; code: string; field: string } }>(
        target,
        CREATE,
        { input: { ...base, ...patch } },
      );
      expect(response.body.errors, JSON.stringify(patch)).toBeUndefined();
      expect(response.body.data?.createDestination, JSON.stringify(patch)).toMatchObject({ code, field });
    }
    // An unknown kind is refused by the schema itself (an enum), before any resolver runs.
    const unknownKind = await gql(api, CREATE, { input: { ...base, kind: 'CARRIER_PIGEON' } });
    expect(unknownKind.body.errors?.[0]?.message).toContain('CARRIER_PIGEON');
    expect(await count()).toBe(before);
  });

  it('pause, resume, rotate, test, replay and delete through GraphQL', async () => {
    const pause = await gqlData<{ pauseDestination: { destination: { state: string } } }>(
      api,
      'mutation { pauseDestination(name: "orders-hook") { ... on PauseDestinationSuccess { destination { state } } } }',
    );
    expect(pause.pauseDestination.destination.state).toBe('PAUSED');
    await t.db.transaction().execute((trx) => appendEvents(trx, [Pinged.create('a', { n: 2 })]));
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(r.acknowledged().length).toBe(1);
    await gqlData(api, 'mutation { resumeDestination(name: "orders-hook") { __typename } }');
    await waitFor('delivered after resume', async () => r.acknowledged().length === 2, 5000);

    const rotated = await gqlData<{
      rotateDestinationSecret: { secret: string; destination: { previousSecretExpiresAt: string } };
    }>(
      api,
      'mutation { rotateDestinationSecret(name: "orders-hook", overlapSeconds: 60) { ... on RotateDestinationSecretSuccess { secret destination { previousSecretExpiresAt } } } }',
    );
    expect(rotated.rotateDestinationSecret.secret).toMatch(/^whsec_/);
    expect(rotated.rotateDestinationSecret.destination.previousSecretExpiresAt).not.toBeNull();
    r.secrets = [rotated.rotateDestinationSecret.secret];

    const tested = await gqlData<{ testDestination: { ok: boolean; status: number } }>(
      api,
      'mutation { testDestination(name: "orders-hook") { ... on TestDestinationSuccess { ok status } } }',
    );
    expect(tested.testDestination).toEqual({ ok: true, status: 200 });
    const ping = r.requests.at(-1);
    expect(ping?.event?.type).toBe('postbox.ping');
    expect(ping?.verifiedWith).toBe(0);

    const before = r.acknowledged().filter((req) => req.event?.type === 'GqlPinged').length;
    await gqlData(api, 'mutation { replayDestination(name: "orders-hook") { __typename } }');
    await waitFor(
      'replayed',
      async () => r.acknowledged().filter((req) => req.event?.type === 'GqlPinged').length === before + 2,
      5000,
    );

    const missing = await gql<{ pauseDestination: { code: string } }>(
      api,
      'mutation { pauseDestination(name: "nope") { ... on Error { code } } }',
    );
    expect(missing.body.data?.pauseDestination.code).toBe('NOT_FOUND');

    const deleted = await gqlData<{ deleteDestination: { name: string } }>(
      api,
      'mutation { deleteDestination(name: "orders-hook") { ... on DeleteDestinationSuccess { name } } }',
    );
    expect(deleted.deleteDestination.name).toBe('orders-hook');
    const gone = await gqlData<{ destination: unknown }>(api, DESTINATION, { name: 'orders-hook' });
    expect(gone.destination).toBeNull();
  });
});
