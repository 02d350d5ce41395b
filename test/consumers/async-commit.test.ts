import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineConsumer } from '../../src/engine/consumers/consumer.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

let t: TestDatabase;
let postbox: Postbox;
/** synchronous_commit as each consumer's handler saw it, per stream. */
const seen = new Map<string, string>();

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 8 });
  await createEffectsTable(t.db as never);
  const consumer = (name: string, asyncCommit: boolean | undefined) =>
    defineConsumer({
      name,
      on: [Ticked],
      partitions: 2,
      ...(asyncCommit === undefined ? {} : { asyncCommit }),
      async handle(event, trx) {
        const { rows } = await sql<{
          mode: string;
        }>`select current_setting('synchronous_commit') as mode`.execute(trx);
        seen.set(`${name}/${event.streamId}`, rows[0]?.mode ?? '?');
        await sql`insert into test_effects (consumer, event_id, stream_id, stream_version, attempt)
                  values (${name}, ${event.id}, ${event.streamId}, ${event.streamVersion}, 1)`.execute(trx);
      },
    });
  postbox = await startPostbox({
    pool: t.pool,
    pollIntervalMs: 100,
    concurrency: 2,
    consumers: [consumer('projection', true), consumer('durable', undefined)],
  });
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

describe('asyncCommit', () => {
  it('commits that consumer’s delivery transactions without waiting for the flush, and no other’s', async () => {
    const streams = ['a', 'b', 'c', 'd'];
    await t.db.transaction().execute((trx) =>
      appendEvents(
        trx,
        streams.map((stream) => Ticked.create(stream, { n: 1 })),
      ),
    );
    await waitFor('every event delivered to both consumers', async () => {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from test_effects`.execute(t.db);
      return (rows[0]?.n ?? 0) >= streams.length * 2;
    });
    for (const stream of streams) {
      expect(seen.get(`projection/${stream}`)).toBe('off');
      // The session's own setting stands (the server default here).
      expect(seen.get(`durable/${stream}`)).toBe('on');
    }
    // Transaction-scoped: the pool's sessions keep their own setting afterwards.
    const { rows } = await t.pool.query<{ mode: string }>(
      "select current_setting('synchronous_commit') as mode",
    );
    expect(rows[0]?.mode).toBe('on');
  });
});
