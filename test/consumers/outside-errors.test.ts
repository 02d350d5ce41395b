import { randomBytes, randomUUID } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineConsumer } from '../../src/engine/consumers/consumer.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { defineEvent } from '../../src/engine/outbox/event.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

// Failures that happen outside the handler's own throw: each used to stop every stream of its partition
// for good (the drain failed and was retried forever, with no dead letter).

const Swallowed = defineEvent({
  type: 'Swallowed',
  streamType: 'oe',
  schema: z.object({ bad: z.boolean() }),
});
const Deferred = defineEvent({ type: 'Deferred', streamType: 'oe', schema: z.object({ bad: z.boolean() }) });
const Nul = defineEvent({ type: 'Nul', streamType: 'oe', schema: z.object({ bad: z.boolean() }) });

let t: TestDatabase;
let postbox: Postbox;

const effect = (consumer: string, streamId: string, trx: Kysely<never>) =>
  sql`insert into test_effects (consumer, event_id, stream_id, stream_version, attempt)
      values (${consumer}, ${randomUUID()}, ${streamId}, 1, 1)`.execute(trx);

// One partition each, retried twice, then dead-lettered: the failing event and the healthy ones share it.
const common = {
  partitions: 1,
  retry: { maxAttempts: 2, initialDelayMs: 50, maxDelayMs: 100, jitter: 0 },
} as const;

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 12 });
  await createEffectsTable(t.db as never);
  await sql`create table test_parent (id int primary key)`.execute(t.db);
  await sql`create table test_child (id int primary key,
              parent int references test_parent deferrable initially deferred)`.execute(t.db);
  postbox = await startPostbox({
    pool: t.pool,
    pollIntervalMs: 100,
    concurrency: 2,
    consumers: [
      defineConsumer({
        ...common,
        name: 'swallows',
        on: [Swallowed],
        async handle(event, trx) {
          if (event.payload.bad) {
            // A handler that catches a database error and carries on: the transaction is aborted.
            await sql`select 1 / 0`.execute(trx).catch(() => undefined);
            return;
          }
          await effect('swallows', event.streamId, trx as never);
        },
      }),
      defineConsumer({
        ...common,
        name: 'defers',
        on: [Deferred],
        async handle(event, trx) {
          // A deferred foreign key: a bad row fails only at COMMIT.
          const parent = event.payload.bad ? -1 : 1;
          await sql`insert into test_child (id, parent)
                    values ((select coalesce(max(id), 0) + 1 from test_child), ${parent})`.execute(trx);
          await effect('defers', event.streamId, trx as never);
        },
      }),
      defineConsumer({
        ...common,
        name: 'nul',
        on: [Nul],
        async handle(event, trx) {
          if (event.payload.bad) throw new Error('bad byte \u0000 in the message');
          await effect('nul', event.streamId, trx as never);
        },
      }),
    ],
  });
  await sql`insert into test_parent values (1)`.execute(t.db);
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

const delivered = async (consumer: string) =>
  (
    await sql<{ stream_id: string }>`select stream_id from test_effects where consumer = ${consumer}
                                     order by seq`.execute(t.db)
  ).rows.map((row) => row.stream_id);

const deadLetters = async (consumer: string) =>
  (
    await sql<{ stream_id: string; last_error: string }>`
      select stream_id, last_error from outbox.dead_letters where consumer = ${consumer}`.execute(t.db)
  ).rows;

/** Appends a bad event, then healthy ones after it in the same partition; all must be settled. */
async function scenario(consumer: string, event: typeof Swallowed | typeof Deferred | typeof Nul) {
  const bad = `${consumer}-bad`;
  const good = [1, 2, 3].map((n) => `${consumer}-good-${n}`);
  // Two healthy events in the bad one's batch (the fast path runs them together), one in a later batch.
  await t.db
    .transaction()
    .execute((trx) =>
      appendEvents(trx, [
        event.create(good[0] as string, { bad: false }),
        event.create(bad, { bad: true }),
        event.create(good[1] as string, { bad: false }),
      ]),
    );
  await t.db
    .transaction()
    .execute((trx) => appendEvents(trx, [event.create(good[2] as string, { bad: false })]));
  await waitFor(
    `${consumer}: healthy streams delivered`,
    async () => (await delivered(consumer)).length >= 3,
    20_000,
  );
  const dead = await waitFor(`${consumer}: the bad event dead-lettered`, async () => {
    const rows = await deadLetters(consumer);
    return rows.length > 0 && rows;
  });
  expect((await delivered(consumer)).sort()).toEqual([...good].sort());
  expect(dead.map((row) => row.stream_id)).toEqual([bad]);
  return dead[0]?.last_error ?? '';
}

describe('errors outside the handler are attributed to the event that caused them', () => {
  it('a handler that swallows a database error: its event fails, the partition moves on', async () => {
    const error = await scenario('swallows', Swallowed);
    expect(error).toMatch(/aborted/);
  });

  it('a deferred constraint failing at COMMIT: its event fails, the partition moves on', async () => {
    const error = await scenario('defers', Deferred);
    expect(error).toMatch(/foreign key/);
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from test_child`.execute(t.db);
    expect(rows[0]?.n).toBe(3);
  });

  it('an error message with a NUL byte is stored (without it), and the partition moves on', async () => {
    const error = await scenario('nul', Nul);
    expect(error).toMatch(/^bad byte .* in the message$/);
    expect(error).not.toContain('\u0000');
  });
});

/**
 * 12 events of 300 kB of random base64 (Postgres does not compress it: 3.6 MB, 3 per 1 MiB) on one stream,
 * to a consumer with a 1 MiB batch cap; with `failFirst`, the first attempt of the first event fails, so
 * the other 11 wait behind it and are read again by its retry. Returns the versions in delivery order and
 * the most events any one delivery transaction handled.
 */
async function deliverBigEvents(name: string, failFirst: boolean) {
  const s = await createTestDatabase({ poolSize: 8 });
  const Big = defineEvent({ type: `Big-${name}`, streamType: 'big', schema: z.object({ blob: z.string() }) });
  const seen: Array<{ version: number; xid: string }> = [];
  let failing = failFirst;
  const engine = await startPostbox({
    pool: s.pool,
    pollIntervalMs: 100,
    concurrency: 1,
    consumers: [
      defineConsumer({
        name,
        on: [Big],
        partitions: 1,
        batchSize: 100,
        batchBytes: 1024 * 1024,
        retry: { maxAttempts: 5, initialDelayMs: 200, maxDelayMs: 200, jitter: 0 },
        async handle(event, trx) {
          if (event.streamVersion === 1 && failing) {
            failing = false;
            throw new Error('the first attempt fails: the stream waits behind it');
          }
          const { rows } = await sql<{ xid: string }>`select pg_current_xact_id()::text as xid`.execute(trx);
          seen.push({ version: event.streamVersion, xid: rows[0]?.xid as string });
        },
      }),
    ],
  });
  try {
    const events = Array.from({ length: 12 }, () =>
      Big.create('one', { blob: randomBytes(225_000).toString('base64') }),
    );
    await s.db.transaction().execute((trx) => appendEvents(trx, events));
    await waitFor('all delivered', async () => seen.length >= 12, 30_000);
    const perTransaction = new Map<string, number>();
    for (const row of seen) perTransaction.set(row.xid, (perTransaction.get(row.xid) ?? 0) + 1);
    return {
      versions: seen.map((row) => row.version),
      mostPerTransaction: Math.max(...perTransaction.values()),
    };
  } finally {
    await engine.stop();
    await s.drop();
  }
}

describe('batches are capped by bytes as well as by count', () => {
  it('large events go in several delivery transactions, every one delivered once, in order', async () => {
    const { versions, mostPerTransaction } = await deliverBigEvents('bulky', false);
    expect(versions).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(mostPerTransaction).toBeLessThanOrEqual(4);
  });

  it('a blocked stream catches up in byte-capped batches too, in order', async () => {
    const { versions, mostPerTransaction } = await deliverBigEvents('bulky-blocked', true);
    expect(versions).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(mostPerTransaction).toBeLessThanOrEqual(4);
  });
});

describe('failure storms stay cheap', () => {
  it('a careful rerun (a savepoint per handler) takes at most 64 handlers per transaction', async () => {
    const s = await createTestDatabase({ poolSize: 8 });
    await createEffectsTable(s.db as never);
    /** Top-level transaction → the (sub)transaction ids its handlers' rows were written under. */
    const perTransaction = new Map<string, Set<string>>();
    const Storm = defineEvent({ type: 'Storm', streamType: 'storm', schema: z.object({ bad: z.boolean() }) });
    const engine = await startPostbox({
      pool: s.pool,
      pollIntervalMs: 100,
      concurrency: 1,
      consumers: [
        defineConsumer({
          name: 'stormy',
          on: [Storm],
          partitions: 1,
          batchSize: 500,
          retry: { maxAttempts: 1, initialDelayMs: 50, maxDelayMs: 50, jitter: 0 },
          async handle(event, trx) {
            // A writing handler: in a savepoint of its own, its row gets a subtransaction id of its own.
            const { rows } = await sql<{ xid: string; sub: string }>`
              insert into test_effects (consumer, event_id, stream_id, stream_version, attempt)
              values ('stormy', ${event.id}, ${event.streamId}, ${event.streamVersion}, 1)
              returning pg_current_xact_id()::text as xid, xmin::text as sub`.execute(trx);
            const row = rows[0] as { xid: string; sub: string };
            perTransaction.set(row.xid, new Set([...(perTransaction.get(row.xid) ?? []), row.sub]));
            if (event.payload.bad) throw new Error('storm');
          },
        }),
      ],
    });
    try {
      // The first event fails: the batch of 300 reruns carefully.
      await s.db.transaction().execute((trx) =>
        appendEvents(
          trx,
          Array.from({ length: 300 }, (_, n) => Storm.create(`st${n}`, { bad: n === 0 })),
        ),
      );
      await waitFor(
        'all settled',
        async () => {
          const { rows } = await sql<{ n: number }>`select count(*)::int as n from test_effects
          where consumer = 'stormy'`.execute(s.db);
          return rows[0]?.n === 299;
        },
        60_000,
      );
      // Subtransaction ids per transaction: beyond 64 a backend's subtransaction cache overflows, and every
      // snapshot in the cluster gets slower while that transaction runs.
      expect(Math.max(...[...perTransaction.values()].map((ids) => ids.size))).toBeLessThanOrEqual(64);
    } finally {
      await engine.stop();
      await s.drop();
    }
  }, 90_000);
});
