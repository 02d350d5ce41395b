import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/auth/api-keys.ts';
import type { Db } from '../../src/db/database.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import type { GraphqlApi } from '../../src/graphql/yoga.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import { createTestApi, gql, gqlData } from './graphql-fixtures.ts';

// The operator's GraphQL surface: consumers' partitions and stuck streams, dead letters with their events,
// and pause / resume / replay / redrive — with the admin scope only.

let t: TestDatabase;
let db: Db;
let postbox: Postbox | undefined;
let api: GraphqlApi;
let adminKey: string;
let readerKey: string;
let failing = true;

beforeAll(async () => {
  t = await createTestDatabase();
  db = t.db as unknown as Db;
  await createEffectsTable(t.db as never);
  postbox = await startPostbox({
    pool: t.pool,
    pollIntervalMs: 100,
    consumers: [
      effectsConsumer({
        name: 'ledger',
        partitions: 2,
        failPoison: () => failing,
        retry: { maxAttempts: 2 },
      }),
      effectsConsumer({ name: 'audit', partitions: 2 }),
    ],
  });
  api = createTestApi(db, t.url, { auth: { enabled: true } });
  adminKey = (await createApiKey(db, { name: 'ops', scopes: ['admin'] })).key;
  readerKey = (await createApiKey(db, { name: 'reader', scopes: ['events:read'] })).key;
});

afterAll(async () => {
  await api?.close();
  await postbox?.stop();
  await t?.drop();
});

const asAdmin = () => ({ authorization: `Bearer ${adminKey}` });
const effects = async (consumer: string, stream: string) =>
  (
    await sql<{ stream_version: number }>`select stream_version from test_effects
      where consumer = ${consumer} and stream_id = ${stream} order by seq`.execute(t.db)
  ).rows.map((row) => row.stream_version);

const DEAD_LETTERS = /* GraphQL */ `
  query Dead($consumer: String, $type: String, $errorContains: String, $first: Int, $after: String) {
    deadLetters(consumer: $consumer, type: $type, errorContains: $errorContains, first: $first, after: $after) {
      edges { cursor node { id consumer attempts error stack event { id streamId streamVersion payload } } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

describe('the operator surface in GraphQL', () => {
  it('shows a dead letter with its error and event; redrive after the fix delivers it and the stream follows in order', async () => {
    const stream = randomUUID();
    await db
      .transaction()
      .execute((trx) =>
        appendEvents(trx, [
          Ticked.create(stream, { n: 1 }),
          Ticked.create(stream, { n: 2, poison: true }),
          Ticked.create(stream, { n: 3 }),
        ]),
      );
    await waitFor(
      'the poison event dead-lettered',
      async () => (await effects('ledger', stream)).length === 2,
    );
    expect(await effects('ledger', stream)).toEqual([1, 3]);

    type Dead = {
      deadLetters: {
        edges: Array<{
          node: {
            id: string;
            consumer: string;
            attempts: number;
            error: string;
            stack: string | null;
            event: { streamId: string; streamVersion: number; payload: unknown };
          };
        }>;
        pageInfo: { hasNextPage: boolean };
      };
    };
    const dead = await gqlData<Dead>(
      api,
      DEAD_LETTERS,
      { consumer: 'ledger', errorContains: 'POISON EVENT' },
      asAdmin(),
    );
    expect(dead.deadLetters.edges).toHaveLength(1);
    const letter = dead.deadLetters.edges[0]?.node;
    expect(letter).toMatchObject({
      consumer: 'ledger',
      attempts: 2,
      error: 'poison event 2',
      event: { streamId: stream, streamVersion: 2, payload: { n: 2, poison: true } },
    });
    expect(letter?.stack).toMatch(/poison event 2/);
    // Filters that do not match return nothing.
    expect(
      (await gqlData<Dead>(api, DEAD_LETTERS, { consumer: 'audit' }, asAdmin())).deadLetters.edges,
    ).toEqual([]);
    expect(
      (await gqlData<Dead>(api, DEAD_LETTERS, { errorContains: '%' }, asAdmin())).deadLetters.edges,
    ).toEqual([]);

    type Consumer = {
      consumer: {
        deadLetters: number;
        checkpoints: Array<{ partition: number; deadLetters: number; lag: number }>;
      };
    };
    const before = await gqlData<Consumer>(
      api,
      '{ consumer(name: "ledger") { deadLetters checkpoints { partition deadLetters lag } } }',
      {},
      asAdmin(),
    );
    expect(before.consumer.deadLetters).toBe(1);
    expect(before.consumer.checkpoints.map((p) => p.partition)).toEqual([0, 1]);
    expect(before.consumer.checkpoints.reduce((sum, p) => sum + p.deadLetters, 0)).toBe(1);

    failing = false;
    const redrive = await gqlData<{ redriveDeadLetters: { __typename: string; queued?: number } }>(
      api,
      'mutation R($ids: [ID!]) { redriveDeadLetters(consumer: "ledger", ids: $ids) { __typename ... on RedriveDeadLettersSuccess { queued } } }',
      { ids: [letter?.id] },
      asAdmin(),
    );
    expect(redrive.redriveDeadLetters).toEqual({ __typename: 'RedriveDeadLettersSuccess', queued: 1 });
    await waitFor('the redriven event delivered', async () => (await effects('ledger', stream)).length === 3);
    // Redrive delivers the failed event; with dead_letter the stream had continued past it already.
    expect(await effects('ledger', stream)).toEqual([1, 3, 2]);
    expect(
      (await gqlData<Dead>(api, DEAD_LETTERS, { consumer: 'ledger' }, asAdmin())).deadLetters.edges,
    ).toEqual([]);
  });

  it('pages through dead letters with cursors, each letter once', async () => {
    failing = true;
    const streams = Array.from({ length: 5 }, () => randomUUID());
    for (const stream of streams)
      await db
        .transaction()
        .execute((trx) => appendEvents(trx, [Ticked.create(stream, { n: 9, poison: true })]));
    type Page = {
      deadLetters: {
        edges: Array<{ node: { event: { streamId: string } } }>;
        pageInfo: { hasNextPage: boolean; endCursor: string | null };
      };
    };
    await waitFor('five dead letters', async () => {
      const page = await gqlData<Page>(api, DEAD_LETTERS, { consumer: 'ledger', first: 100 }, asAdmin());
      return page.deadLetters.edges.length === 5;
    });
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const data: Page = await gqlData<Page>(
        api,
        DEAD_LETTERS,
        { consumer: 'ledger', first: 2, after },
        asAdmin(),
      );
      seen.push(...data.deadLetters.edges.map((edge) => edge.node.event.streamId));
      after = data.deadLetters.pageInfo.endCursor;
      if (!data.deadLetters.pageInfo.hasNextPage) break;
    }
    expect(seen.sort()).toEqual([...streams].sort());
    const bad = await gql(api, DEAD_LETTERS, { after: 'not-a-cursor' }, asAdmin());
    expect(bad.body.errors?.[0]?.message).toMatch(/after is not a valid cursor/);
  });

  it('pause and resume stop and restart delivery; replay re-delivers after a position', async () => {
    const paused = await gqlData<{ pauseConsumer: { __typename: string; consumer?: { status: string } } }>(
      api,
      'mutation { pauseConsumer(name: "audit") { __typename ... on PauseConsumerSuccess { consumer { status } } } }',
      {},
      asAdmin(),
    );
    expect(paused.pauseConsumer).toEqual({
      __typename: 'PauseConsumerSuccess',
      consumer: { status: 'paused' },
    });
    const stream = randomUUID();
    await db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(stream, { n: 1 })]));
    await waitFor('ledger got it', async () => (await effects('ledger', stream)).length === 1);
    // While paused, audit does not deliver (ledger did, so the relay has seen the event).
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await effects('audit', stream)).toEqual([]);

    const resumed = await gqlData<{ resumeConsumer: { __typename: string } }>(
      api,
      'mutation { resumeConsumer(name: "audit") { __typename } }',
      {},
      asAdmin(),
    );
    expect(resumed.resumeConsumer.__typename).toBe('ResumeConsumerSuccess');
    await waitFor('audit delivered after resume', async () => (await effects('audit', stream)).length === 1);

    const { rows } = await sql<{ position: string }>`select position::text from outbox.events
      where stream_id = ${stream}`.execute(t.db);
    const position = rows[0]?.position as string;
    const before = BigInt(position) - 1n;
    const preview = await gqlData<{ consumer: { replayPreview: Record<string, unknown> } }>(
      api,
      'query P($after: String) { consumer(name: "audit") { replayPreview(afterPosition: $after) { events streams firstPosition lastPosition eventTypes } } }',
      { after: String(before) },
      asAdmin(),
    );
    expect(preview.consumer.replayPreview).toEqual({
      events: 1,
      streams: 1,
      firstPosition: position,
      lastPosition: position,
      eventTypes: ['Ticked'],
    });
    const replay = await gqlData<{ replayConsumer: { __typename: string } }>(
      api,
      'mutation R($input: ReplayConsumerInput!) { replayConsumer(input: $input) { __typename } }',
      { input: { name: 'audit', afterPosition: String(before) } },
      asAdmin(),
    );
    expect(replay.replayConsumer.__typename).toBe('ReplayConsumerSuccess');
    await waitFor('audit got it again', async () => (await effects('audit', stream)).length === 2);
  });

  it('expected failures are typed results; an events:read key and no key are refused', async () => {
    const missing = await gqlData<{ pauseConsumer: { __typename: string; code?: string } }>(
      api,
      'mutation { pauseConsumer(name: "nobody") { __typename ... on Error { code } } }',
      {},
      asAdmin(),
    );
    expect(missing.pauseConsumer).toEqual({ __typename: 'NotFoundError', code: 'NOT_FOUND' });
    const badPosition = await gqlData<{ replayConsumer: { __typename: string; field?: string } }>(
      api,
      'mutation { replayConsumer(input: {name: "audit", afterPosition: "x"}) { __typename ... on ValidationError { field } } }',
      {},
      asAdmin(),
    );
    expect(badPosition.replayConsumer).toEqual({
      __typename: 'ValidationError',
      field: 'input.afterPosition',
    });

    for (const headers of [{ authorization: `Bearer ${readerKey}` }, {}] as Record<string, string>[]) {
      const forged = await gql(api, 'mutation { pauseConsumer(name: "audit") { __typename } }', {}, headers);
      expect(forged.body.errors?.[0]?.extensions?.code).toMatch(/FORBIDDEN|UNAUTHENTICATED/);
      const read = await gql(api, '{ deadLetters { edges { cursor } } }', {}, headers);
      expect(read.body.errors?.[0]?.extensions?.code).toMatch(/FORBIDDEN|UNAUTHENTICATED/);
    }
    const { rows } = await sql<{
      status: string;
    }>`select status from outbox.consumers where name = 'audit'`.execute(t.db);
    expect(rows[0]?.status).toBe('active');
  });
});
