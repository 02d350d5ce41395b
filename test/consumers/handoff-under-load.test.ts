import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * One process that leads the relay and has a slot for every partition of its consumer drains everything
 * on the relay's direct hand-off, under sustained writes too: the job queue (an insert, a fetch and a
 * delete per drain, and a queued drain waiting on the lock a hand-off drain holds) is for other processes,
 * retries and overflow. Polls and hand-offs of a partition that is already draining only ask that drain to
 * look again.
 */
describe('hand-off under sustained writes', () => {
  let t: TestDatabase;
  let postbox: Postbox;
  let jobs = 0;

  beforeAll(async () => {
    t = await createTestDatabase({ poolSize: 24 });
    await createEffectsTable(t.db as never);
    postbox = await startPostbox({
      pool: t.pool,
      // Frequent polls: each one finds every partition behind while writers run.
      pollIntervalMs: 50,
      concurrency: 8,
      consumers: [effectsConsumer({ name: 'steady', partitions: 4 })],
    });
    postbox.events.on('job', () => jobs++);
  });
  afterAll(async () => {
    await postbox?.stop();
    await t?.drop();
  });

  it('runs no queued drain job, and delivers every event once in stream order', async () => {
    const streams = Array.from({ length: 40 }, () => randomUUID());
    const deadline = Date.now() + 3000;
    let appended = 0;
    await Promise.all(
      Array.from({ length: 8 }, async (_, writer) => {
        for (let n = 1; Date.now() < deadline; n++) {
          const stream = streams[(writer * 5 + (n % 5)) % streams.length] as string;
          await t.db
            .transaction()
            .execute((trx) => appendEvents(trx, [Ticked.create(stream, { n: writer * 1_000_000 + n })]));
          appended++;
        }
      }),
    );
    expect(appended).toBeGreaterThan(100);
    const rows = await waitFor(`all ${appended} events handled`, async () => {
      const { rows } = await sql<{ event_id: string; stream_id: string; stream_version: number }>`
        select event_id::text, stream_id, stream_version from test_effects where consumer = 'steady'
        order by seq`.execute(t.db);
      return rows.length >= appended && rows;
    });
    expect(rows).toHaveLength(appended);
    expect(new Set(rows.map((row) => row.event_id)).size).toBe(appended);
    for (const stream of streams) {
      const versions = rows.filter((row) => row.stream_id === stream).map((row) => row.stream_version);
      expect(versions).toEqual(versions.map((_, i) => i + 1));
    }
    expect(jobs).toBe(0);
  });
});
