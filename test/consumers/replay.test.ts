import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redriveDeadLetters, replayConsumer } from '../../src/engine/consumers/admin.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

let t: TestDatabase;
let postbox: Postbox;
let poisonFails = true;

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 12 });
  await createEffectsTable(t.db as never);
  postbox = await startPostbox({
    pool: t.pool,
    pollIntervalMs: 100,
    concurrency: 2,
    consumers: [
      // Keeps retrying its failed event.
      effectsConsumer({
        name: 'retrying',
        partitions: 1,
        failPoison: () => poisonFails,
        retry: { maxAttempts: 1000, initialDelayMs: 100, maxDelayMs: 200 },
      }),
      // Parks the stream at once, with a dead letter, until an operator redrives it.
      effectsConsumer({
        name: 'parking',
        partitions: 1,
        failPoison: () => poisonFails,
        retry: { maxAttempts: 1 },
        onExhausted: 'block',
      }),
    ],
  });
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

const versions = async (consumer: string, stream: string) =>
  (
    await sql<{ stream_version: number }>`select stream_version from test_effects
      where consumer = ${consumer} and stream_id = ${stream} order by seq`.execute(t.db)
  ).rows.map((row) => row.stream_version);

const blocked = async (consumer: string) =>
  (
    await sql<{
      stream_id: string;
    }>`select stream_id from outbox.blocked_streams where consumer = ${consumer}`.execute(t.db)
  ).rows.map((row) => row.stream_id);

describe('replay keeps what failed', () => {
  it('a replay to a point after a failed event keeps its stream blocked: the event and those behind it are still delivered', async () => {
    const failing = randomUUID();
    const healthy = randomUUID();
    await t.db
      .transaction()
      .execute((trx) => appendEvents(trx, [Ticked.create(failing, { n: 1, poison: true })]));
    await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(failing, { n: 2 })]));
    await t.db.transaction().execute((trx) =>
      appendEvents(
        trx,
        [1, 2, 3].map((n) => Ticked.create(healthy, { n })),
      ),
    );
    for (const consumer of ['retrying', 'parking']) {
      await waitFor(
        `${consumer}: healthy stream delivered`,
        async () => (await versions(consumer, healthy)).length === 3,
      );
      await waitFor(`${consumer}: failing stream blocked`, async () =>
        (await blocked(consumer)).includes(failing),
      );
    }
    // Replay after the healthy stream's second event: the failed event and its follower are before it.
    const { rows } = await sql<{ position: string }>`select position::text from outbox.events
      where stream_id = ${healthy} and stream_version = 2`.execute(t.db);
    const point = rows[0]?.position as string;
    const retrying = await replayConsumer(t.db, 'retrying', { afterPosition: point });
    const parking = await replayConsumer(t.db, 'parking', { afterPosition: point });
    // What the replay did with what failed is said, not left to be discovered.
    expect(retrying).toMatchObject({ keptBlockedStreams: 1, releasedBlockedStreams: 0 });
    expect(parking).toMatchObject({ keptBlockedStreams: 1, releasedBlockedStreams: 0, openDeadLetters: 1 });
    expect(await blocked('retrying')).toContain(failing);
    expect(await blocked('parking')).toContain(failing);

    poisonFails = false;
    // The retrying stream catches up by itself: the failed event, then the one that waited behind it.
    await waitFor(
      'retrying: failed stream delivered',
      async () => (await versions('retrying', failing)).length === 2,
    );
    expect(await versions('retrying', failing)).toEqual([1, 2]);
    // The parked stream waits for the operator, then delivers both in order.
    expect(await versions('parking', failing)).toEqual([]);
    expect(await redriveDeadLetters(t.db, 'parking')).toBe(1);
    await waitFor(
      'parking: redriven stream delivered',
      async () => (await versions('parking', failing)).length === 2,
    );
    expect(await versions('parking', failing)).toEqual([1, 2]);
    // The replayed part of the healthy stream came again, for both.
    for (const consumer of ['retrying', 'parking']) {
      await waitFor(`${consumer}: replayed`, async () => (await versions(consumer, healthy)).length === 4);
      expect(await versions(consumer, healthy)).toEqual([1, 2, 3, 3]);
    }
  });

  it('a replay to a point before a failed event releases its stream: the replay delivers it again from there', async () => {
    poisonFails = true;
    const failing = randomUUID();
    const before = randomUUID();
    await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(before, { n: 1 })]));
    await t.db
      .transaction()
      .execute((trx) => appendEvents(trx, [Ticked.create(failing, { n: 1, poison: true })]));
    await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(failing, { n: 2 })]));
    await waitFor('retrying: failing stream blocked', async () =>
      (await blocked('retrying')).includes(failing),
    );
    const { rows } = await sql<{ position: string }>`select position::text from outbox.events
      where stream_id = ${before}`.execute(t.db);
    const result = await replayConsumer(t.db, 'retrying', { afterPosition: rows[0]?.position as string });
    expect(result).toMatchObject({ keptBlockedStreams: 0, releasedBlockedStreams: 1 });
    poisonFails = false;
    await waitFor(
      'retrying: delivered after the replay',
      async () => (await versions('retrying', failing)).length === 2,
    );
    expect(await versions('retrying', failing)).toEqual([1, 2]);
  });
});
