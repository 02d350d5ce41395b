import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listDeadLetters } from '../../src/engine/consumers/admin.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

// Producers that append through SQL (outbox.append_event) are not checked against the TypeScript schemas
// at write. The engine checks every event before a handler sees it: a payload that does not match is
// exhausted at once — no retries, since no retry can fix it — and dead-lettered (or blocks its stream, per
// the consumer's policy) with an error naming the field.

let t: TestDatabase;
let postbox: Postbox;
const seen: Array<{ consumer: string; n: number; streamId: string }> = [];

beforeAll(async () => {
  t = await createTestDatabase();
  await createEffectsTable(t.db as never);
  postbox = await startPostbox({
    pool: t.pool,
    pollIntervalMs: 100,
    consumers: [
      effectsConsumer({
        name: 'lenient',
        retry: { maxAttempts: 5, initialDelayMs: 50 },
        before: (event) => void seen.push({ consumer: 'lenient', ...event }),
      }),
      effectsConsumer({
        name: 'strict',
        onExhausted: 'block',
        retry: { maxAttempts: 5, initialDelayMs: 50 },
        before: (event) => void seen.push({ consumer: 'strict', ...event }),
      }),
    ],
  });
});

afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

/** Stream versions whose effect a consumer committed, in commit order. */
async function committed(consumer: string, streamId: string): Promise<number[]> {
  const { rows } = await t.pool.query<{ stream_version: number }>(
    'select stream_version from test_effects where consumer = $1 and stream_id = $2 order by seq',
    [consumer, streamId],
  );
  return rows.map((row) => row.stream_version);
}

/** Appends a Ticked event through the SQL function, as a producer in another language would. */
async function appendThroughSql(streamId: string, payload: unknown): Promise<void> {
  await t.pool.query(
    `select * from outbox.append_event(stream_type => 'counter', stream_id => $1, type => 'Ticked', payload => $2::jsonb)`,
    [streamId, JSON.stringify(payload)],
  );
}

describe('events appended through SQL are held to their registered schema', () => {
  it('dead-letters an invalid payload at once, naming the field, and never calls the handler with it', async () => {
    const stream = `sql-${randomUUID()}`;
    await appendThroughSql(stream, { n: 1 });
    await appendThroughSql(stream, { n: 'two' }); // n must be an integer
    await appendThroughSql(stream, { n: 3 });

    await waitFor('both valid events committed by the lenient consumer', async () => {
      const versions = await committed('lenient', stream);
      return versions.length >= 2 && versions;
    });
    const letters = (await listDeadLetters(t.db, 'lenient')).filter((letter) => letter.stream_id === stream);
    expect(letters).toHaveLength(1);
    expect(letters[0]?.stream_version).toBe(2);
    expect(letters[0]?.attempts).toBe(1); // exhausted at once: retrying cannot fix a payload
    expect(letters[0]?.last_error).toMatch(/does not match its registered schema/);
    expect(letters[0]?.last_error).toContain('payload.n');
    // The stream moved on past it, in order; the handler was never called with the invalid payload (calls
    // include a fast batch's rerun, hence the set).
    expect(await committed('lenient', stream)).toEqual([1, 3]);
    const calls = seen.filter((entry) => entry.consumer === 'lenient' && entry.streamId === stream);
    expect(new Set(calls.map((entry) => entry.n))).toEqual(new Set([1, 3]));
  });

  it("with onExhausted 'block' the stream waits behind the invalid event", async () => {
    const stream = `sql-${randomUUID()}`;
    await appendThroughSql(stream, { n: 1 });
    await appendThroughSql(stream, { m: 2 }); // n missing
    await appendThroughSql(stream, { n: 3 });

    await waitFor('the invalid event is dead-lettered for the strict consumer', async () => {
      const letters = (await listDeadLetters(t.db, 'strict')).filter((letter) => letter.stream_id === stream);
      return letters.length === 1 && letters;
    });
    const { rows } = await t.pool.query<{ stream_version: number; next_attempt_at: Date | null }>(
      `select stream_version, next_attempt_at from outbox.blocked_streams where consumer = 'strict' and stream_id = $1`,
      [stream],
    );
    expect(rows).toEqual([{ stream_version: 2, next_attempt_at: null }]); // parked for an operator
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await committed('strict', stream)).toEqual([1]);
    const calls = seen.filter((entry) => entry.consumer === 'strict' && entry.streamId === stream);
    expect(new Set(calls.map((entry) => entry.n))).toEqual(new Set([1]));
  });
});
