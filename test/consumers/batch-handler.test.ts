import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listDeadLetters } from '../../src/engine/consumers/admin.ts';
import { defineConsumer } from '../../src/engine/index.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

// A batch handler (`handleBatch`) gets every event of a drained batch in one call, inside the batch's
// transaction: its writes, the checkpoint and its appended events commit together; a failure of the call
// falls back to one call per event, so retries and dead letters name the event that failed.

let t: TestDatabase;
let postbox: Postbox | undefined;

/** Each call of a batch handler: the events it got, in the order it got them. */
interface Call {
  readonly consumer: string;
  readonly events: Array<{ id: string; streamId: string; version: number; n: number; attempt: number }>;
}
const calls: Call[] = [];
/** The crashing consumer kills its connection in its first batch of several events only. */
let crashOnce = true;

const insertEffects = (consumer: string, events: Call['events']) =>
  sql`insert into test_effects (consumer, event_id, stream_id, stream_version, attempt)
      select ${consumer}, e.id, e.stream_id, e.version, e.attempt
        from jsonb_to_recordset(${JSON.stringify(events)}::jsonb)
             as e(id uuid, "streamId" text, version int, attempt int, stream_id text)`;

/**
 * A batch consumer recording its calls and one effect row per event of `streams` (each test's consumer
 * also gets the earlier tests' events, from the beginning of the log: it passes over those).
 */
function batchConsumer(name: string, streams: readonly string[], options: { crash?: boolean } = {}) {
  return defineConsumer({
    name,
    on: [Ticked],
    partitions: 1,
    batchSize: 100,
    retry: { maxAttempts: 1, initialDelayMs: 50, maxDelayMs: 50, jitter: 0 },
    async handleBatch(all, trx) {
      const items = all.filter(({ event }) => streams.includes(event.streamId));
      if (items.length === 0) return;
      const events = items.map(({ event, context }) => ({
        id: event.id,
        streamId: event.streamId,
        stream_id: event.streamId,
        version: event.streamVersion,
        n: event.payload.n,
        attempt: context.attempt,
      }));
      calls.push({ consumer: name, events });
      await insertEffects(name, events).execute(trx);
      if (items.some(({ event }) => event.payload.poison)) throw new Error('poison in this batch');
      if (options.crash && crashOnce && items.length > 1) {
        crashOnce = false;
        // The process's connection dies mid-batch (a crash as the database sees it): the transaction is
        // lost, the effects already written with it too.
        await sql`select pg_terminate_backend(pg_backend_pid())`.execute(trx);
      }
    },
  });
}

async function append(streamId: string, ns: readonly number[], poison: readonly number[] = []) {
  await t.db.transaction().execute((trx) =>
    appendEvents(
      trx,
      ns.map((n) => Ticked.create(streamId, poison.includes(n) ? { n, poison: true } : { n })),
    ),
  );
}

/** The effects of a consumer on some streams (each test's consumer also gets the earlier tests' events). */
async function effects(consumer: string, streams: readonly string[]) {
  const { rows } = await sql<{ event_id: string; stream_id: string; stream_version: number }>`
    select event_id::text, stream_id, stream_version from test_effects
     where consumer = ${consumer} and stream_id = any(${[...streams]}::text[]) order by seq`.execute(t.db);
  return rows;
}

/** The calls of a consumer, each cut to the events of some streams (empty ones left out). */
function callsOf(consumer: string, streams: readonly string[]): Call[] {
  return calls
    .filter((call) => call.consumer === consumer)
    .map((call) => ({ consumer, events: call.events.filter((e) => streams.includes(e.streamId)) }))
    .filter((call) => call.events.length > 0);
}

async function run(
  consumers: ReturnType<typeof batchConsumer>[],
  until: () => Promise<boolean>,
  settleMs = 0,
) {
  postbox = await startPostbox({ pool: t.pool, pollIntervalMs: 100, concurrency: 2, consumers });
  try {
    await waitFor('delivery', async () => until(), 60_000);
    // Time for a doubled delivery to show before the checks.
    await new Promise((resolve) => setTimeout(resolve, settleMs));
  } finally {
    await postbox.stop();
    postbox = undefined;
  }
}

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 8 });
  await createEffectsTable(t.db as never);
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

describe('batch handlers', () => {
  it('a consumer gives exactly one of handle and handleBatch', () => {
    const common = { name: 'either', on: [Ticked] };
    expect(() => defineConsumer(common)).toThrow(/exactly one of handle and handleBatch/);
    expect(() =>
      defineConsumer({ ...common, handle: async () => undefined, handleBatch: async () => undefined }),
    ).toThrow(/exactly one of handle and handleBatch/);
    const consumer = defineConsumer({ ...common, handleBatch: async () => undefined });
    expect(consumer.handleBatch).toBeDefined();
    expect(typeof consumer.handle).toBe('function');
  });

  it('get the events of a drained batch in one call, in log order (so in stream order)', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    // Committed before the consumer starts: one drain finds all of them.
    await append(a, [1, 2]);
    await append(b, [1, 2, 3]);
    await append(a, [3, 4]);
    await run(
      [batchConsumer('ordered', [a, b])],
      async () => (await effects('ordered', [a, b])).length === 7,
    );

    const mine = callsOf('ordered', [a, b]);
    expect(mine.some((call) => call.events.length > 1)).toBe(true);
    const seen = mine.flatMap((call) => call.events);
    expect(seen.map((e) => `${e.streamId === a ? 'a' : 'b'}${e.n}`)).toEqual([
      'a1',
      'a2',
      'b1',
      'b2',
      'b3',
      'a3',
      'a4',
    ]);
    expect(seen.every((e) => e.attempt === 1)).toBe(true);
    expect(new Set((await effects('ordered', [a, b])).map((row) => row.event_id)).size).toBe(7);
  }, 90_000);

  it('a poison event in the middle of a batch is dead-lettered alone; the others commit once', async () => {
    const [sick, healthy] = [randomUUID(), randomUUID()];
    await append(sick, [1, 2, 3], [2]);
    await append(healthy, [1, 2]);
    const streams: string[] = [sick, healthy];
    await run(
      [batchConsumer('poisoned', streams)],
      async () => (await effects('poisoned', streams)).length === 4,
      300,
    );

    const rows = await effects('poisoned', streams);
    expect(rows.filter((row) => row.stream_id === sick).map((row) => row.stream_version)).toEqual([1, 3]);
    expect(rows.filter((row) => row.stream_id === healthy).map((row) => row.stream_version)).toEqual([1, 2]);
    expect(new Set(rows.map((row) => row.event_id)).size).toBe(4);
    const dead = (await listDeadLetters(t.db, 'poisoned')).filter((row) => streams.includes(row.stream_id));
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ stream_id: sick, stream_version: 2, attempts: 1 });
    expect(dead[0]?.last_error).toContain('poison in this batch');
    // The failing batch call came first; then one call per event, the poison alone in its call.
    const mine = callsOf('poisoned', streams);
    expect(mine[0]?.events.length).toBe(5);
    const poisonCalls = mine.filter((call) => call.events.some((e) => e.streamId === sick && e.n === 2));
    expect(poisonCalls.slice(1).every((call) => call.events.length === 1)).toBe(true);
  }, 90_000);

  it('a crash mid-batch re-delivers the batch, and its effects are not doubled', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    await append(a, [1, 2, 3]);
    await append(b, [1, 2]);
    const streams: string[] = [a, b];
    await run(
      [batchConsumer('crashing', streams, { crash: true })],
      async () => (await effects('crashing', streams)).length === 5,
      500,
    );
    const rows = await effects('crashing', streams);
    expect(rows).toHaveLength(5);
    expect(new Set(rows.map((row) => row.event_id)).size).toBe(5);
    const mine = callsOf('crashing', streams);
    expect(crashOnce).toBe(false);
    // The crashed call's events were delivered again (not counted as a failed attempt).
    expect(mine.length).toBeGreaterThanOrEqual(2);
    const first = mine[0]?.events.map((e) => e.id);
    const redelivered = mine.slice(1).flatMap((call) => call.events.map((e) => e.id));
    expect(first?.every((id) => redelivered.includes(id))).toBe(true);
    expect(mine.flatMap((call) => call.events).every((e) => e.attempt === 1)).toBe(true);
    expect(await listDeadLetters(t.db, 'crashing')).toHaveLength(0);
  }, 90_000);
});
