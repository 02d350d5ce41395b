import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineConsumer } from '../../src/engine/consumers/consumer.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { defineEvent } from '../../src/engine/outbox/event.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

// A rolling deploy: version 1 of a consumer handles A; version 2 also handles T. While both run (started in
// either order), no T event may be skipped, and none may reach version 1's code.

const A = defineEvent({ type: 'RollA', streamType: 'roll', schema: z.object({ n: z.number() }) });
const T = defineEvent({ type: 'RollT', streamType: 'roll', schema: z.object({ n: z.number() }) });

let t: TestDatabase;
let running: Postbox[] = [];

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 20 });
  await sql`create table roll_effects (consumer text, version int, event_type text, stream_id text,
                                       stream_version int, event_id uuid)`.execute(t.db);
});
afterEach(async () => {
  for (const postbox of running) await postbox.stop();
  running = [];
});
afterAll(() => t?.drop());

/** Version 1 (`on: [A]`) or 2 (`on: [A, T]`) of the consumer `name`, in an engine of its own. */
async function start(name: string, version: 1 | 2): Promise<void> {
  const consumer = defineConsumer({
    name,
    on: version === 1 ? [A] : [A, T],
    partitions: 2,
    batchSize: 10,
    async handle(event, trx) {
      await sql`insert into roll_effects values (${name}, ${version}, ${event.type}, ${event.streamId},
                                                 ${event.streamVersion}, ${event.id})`.execute(trx);
    },
  });
  running.push(
    await startPostbox({ pool: t.pool, pollIntervalMs: 100, concurrency: 2, consumers: [consumer] }),
  );
}

async function appendMix(count: number): Promise<void> {
  for (let n = 0; n < count; n++) {
    const event = n % 3 === 1 ? T.create(`r${n % 4}`, { n }) : A.create(`r${n % 4}`, { n });
    await t.db.transaction().execute((trx) => appendEvents(trx, [event]));
  }
}

const effects = async (name: string) =>
  (
    await sql<{
      version: number;
      event_type: string;
      stream_id: string;
      stream_version: number;
      event_id: string;
    }>`
      select version, event_type, stream_id, stream_version, event_id from roll_effects where consumer = ${name}`.execute(
      t.db,
    )
  ).rows;

describe('rolling deploys', () => {
  for (const order of [
    [1, 2],
    [2, 1],
  ] as const) {
    it(`versions started in the order ${order.join(' then ')}: no T event skipped, none handled by version 1`, async () => {
      const name = `roll-${order.join('')}`;
      await start(name, order[0]);
      await start(name, order[1]);
      await appendMix(30);
      // Every A and T event of the log (a new consumer starts from the beginning: earlier tests' too).
      const { rows: counts } = await sql<{ a: number; t: number }>`
        select count(*) filter (where type = 'RollA')::int as a, count(*) filter (where type = 'RollT')::int as t
        from outbox.events`.execute(t.db);
      const appended = counts[0] ?? { a: 0, t: 0 };
      const all = await waitFor(
        'every event delivered',
        async () => {
          const rows = await effects(name);
          return rows.length >= appended.a + appended.t && rows;
        },
        30_000,
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      const rows = await effects(name);
      expect(rows.length).toBe(all.length);
      const ts = rows.filter((row) => row.event_type === 'RollT');
      expect(ts).toHaveLength(appended.t);
      expect(ts.filter((row) => row.version === 1)).toEqual([]);
      expect(rows.filter((row) => row.event_type === 'RollA')).toHaveLength(appended.a);
      expect(new Set(rows.map((row) => row.event_id)).size).toBe(rows.length);
      const { rows: dead } =
        await sql`select event_type from outbox.dead_letters where consumer = ${name}`.execute(t.db);
      expect(dead).toEqual([]);
    }, 60_000);
  }
});
