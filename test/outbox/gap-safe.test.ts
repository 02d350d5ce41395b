import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { LOG_START, type LogPoint, readLogAfter } from '../../src/engine/outbox/read.ts';
import { Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
  await sql`create table business (id serial primary key, note text)`.execute(t.db);
});
afterAll(() => t.drop());

/** A raw client running a transaction step by step, to control commit order exactly. */
async function openTransaction(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query('begin');
  return client;
}

/** Appends one Ticked event through raw SQL equivalent to appendEvents (the real function needs Kysely). */
async function appendRaw(client: pg.Client, streamId: string, n: number): Promise<{ position: string }> {
  const { rows } = await client.query<{ position: string }>(
    `with head as (
       insert into outbox.streams as s (stream_type, stream_id, version, log_xid)
       values ('counter', $1, 1, pg_current_xact_id())
       on conflict (stream_type, stream_id) do update
         set version = s.version + 1, log_xid = greatest(s.log_xid, excluded.log_xid)
       returning s.version, s.log_xid)
     insert into outbox.events (id, log_xid, stream_type, stream_id, stream_version, type, payload)
     select gen_random_uuid(), head.log_xid, 'counter', $1, head.version, 'Ticked', jsonb_build_object('n', $2::int)
     from head returning position::text`,
    [streamId, n],
  );
  return rows[0] as { position: string };
}

async function readAllAfter(
  after: LogPoint,
  streamIds: string[],
): Promise<{ rows: string[]; next: LogPoint }> {
  const seen: string[] = [];
  let point = after;
  for (;;) {
    const page = await readLogAfter(t.db, { after: point, limit: 100 });
    for (const row of page.rows)
      if (streamIds.includes(row.stream_id)) seen.push(`${row.stream_id}:${row.stream_version}`);
    point = page.next;
    if (page.rows.length < 100) return { rows: seen, next: point };
  }
}

describe('gap-safe reading of the log', () => {
  it('never skips a transaction that holds a lower position but commits after a higher one', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const { next: start } = await readAllAfter(LOG_START, []);

    const slow = await openTransaction(t.url);
    const slowEvent = await appendRaw(slow, a, 1); // lower position, not committed yet
    const fast = await openTransaction(t.url);
    const fastEvent = await appendRaw(fast, b, 1);
    await fast.query('commit');
    expect(BigInt(slowEvent.position)).toBeLessThan(BigInt(fastEvent.position));

    // A reader now must not move past the slow transaction: it sees nothing yet (B is held back too).
    const first = await readAllAfter(start, [a, b]);
    expect(first.rows).toEqual([]);

    await slow.query('commit');
    const second = await readAllAfter(first.next, [a, b]);
    expect(second.rows).toEqual([`${a}:1`, `${b}:1`]);
    await Promise.all([slow.end(), fast.end()]);
  });

  it('a naive "position > checkpoint" reader would have lost that event (the bug this prevents)', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const slow = await openTransaction(t.url);
    const slowEvent = await appendRaw(slow, a, 1);
    const fast = await openTransaction(t.url);
    await appendRaw(fast, b, 1);
    await fast.query('commit');
    const naive = await sql<{ position: string }>`
      select max(position)::text as position from outbox.events`.execute(t.db);
    const naiveCheckpoint = BigInt(naive.rows[0]?.position ?? '0');
    await slow.query('commit');
    // Everything after the naive checkpoint excludes the slow event: it would never be delivered.
    expect(BigInt(slowEvent.position)).toBeLessThan(naiveCheckpoint);
    await Promise.all([slow.end(), fast.end()]);
  });

  it('keeps stream order when a writer got its xid before waiting for the stream lock', async () => {
    // Writer A starts first and writes a business row (so it owns an older xid), then appends to stream S.
    // Writer B locked S first, so B gets version 1 and A version 2, although A's xid is older. Reading by
    // (transaction_id, position) would return version 2 before version 1; reading by (log_xid, position)
    // must not. Both writers go through the real appendEvents.
    const stream = randomUUID();
    const { next: start } = await readAllAfter(LOG_START, []);
    const a = await t.db.startTransaction().execute();
    await sql`insert into business (note) values ('a')`.execute(a);
    const b = await t.db.startTransaction().execute();
    await sql`insert into business (note) values ('b')`.execute(b);
    const bResult = await appendEvents(b, [Ticked.create(stream, { n: 1 })]); // B holds the stream row lock
    const aAppend = appendEvents(a, [Ticked.create(stream, { n: 2 })]); // blocks on the lock
    await new Promise((resolve) => setTimeout(resolve, 100));
    await b.commit().execute();
    const aResult = await aAppend;
    await a.commit().execute();

    const rows = await sql<{ position: string; transaction_id: string; stream_version: number }>`
      select position::text, transaction_id::text, stream_version from outbox.events
      where stream_id = ${stream} order by stream_version`.execute(t.db);
    const [v1, v2] = rows.rows;
    expect(v1?.position).toBe(bResult.events[0]?.position);
    expect(v2?.position).toBe(aResult.events[0]?.position);
    // The precondition of the scenario: A's real xid is older than B's.
    expect(BigInt(v2?.transaction_id ?? 0)).toBeLessThan(BigInt(v1?.transaction_id ?? 0));
    const read = await readAllAfter(start, [stream]);
    expect(read.rows).toEqual([`${stream}:1`, `${stream}:2`]);
  });

  it('appendEvents through Kysely interleaves with raw writers without gaps', async () => {
    const stream = randomUUID();
    await Promise.all(
      Array.from({ length: 20 }, (_, n) =>
        t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(stream, { n })])),
      ),
    );
    const read = await readAllAfter(LOG_START, [stream]);
    expect(read.rows).toEqual(Array.from({ length: 20 }, (_, i) => `${stream}:${i + 1}`));
  });
});
