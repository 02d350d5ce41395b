import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { type LogFilter, readLogAfter } from '../../src/engine/outbox/read.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

const EVENTS = 30_000;
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
  // A log of 30k events over 3,000 streams in one committed transaction (real rows, written by SQL for speed:
  // the append path is not what this file tests). Every tenth event carries a correlation id.
  await sql`
    insert into outbox.events (id, log_xid, stream_type, stream_id, stream_version, type, payload, metadata, occurred_at)
    select gen_random_uuid(), pg_current_xact_id(), 'counter', 's' || (n % 3000), n / 3000 + 1, 'Ticked',
           jsonb_build_object('n', n),
           case when n % 10 = 0 then jsonb_build_object('correlationId', 'c-' || n) else '{}'::jsonb end,
           now() - interval '1 day' + n * interval '1 ms'
    from generate_series(0, ${EVENTS - 1}) as n`.execute(database.db);
  await sql`analyze outbox.events`.execute(database.db);
}, 120_000);

afterAll(async () => {
  await database?.drop();
});

/**
 * Rows of outbox.events the read touched (sequential and index fetches), from the transaction's own
 * statistics: deterministic, unlike a timer on a shared machine.
 */
async function rowsTouched(filter: LogFilter): Promise<{ touched: number; found: number }> {
  return database.db.transaction().execute(async (trx: Kysely<Database>) => {
    const page = await readLogAfter(trx, { limit: 50, filter });
    const { rows } = await sql<{ touched: string }>`
      select (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::text as touched
      from pg_stat_xact_user_tables where schemaname = 'outbox' and relname = 'events'`.execute(trx);
    return { touched: Number(rows[0]?.touched ?? 0), found: page.rows.length };
  });
}

describe('event filters use indexes', () => {
  it('correlationId reads its events through the partial index', async () => {
    const result = await rowsTouched({ correlationId: 'c-12340' });
    expect(result.found).toBe(1);
    expect(result.touched).toBeLessThan(1000);
  });

  it('streamId without streamType is indexed', async () => {
    const result = await rowsTouched({ streamId: 's42' });
    expect(result.found).toBe(10);
    expect(result.touched).toBeLessThan(1000);
  });

  it('a `from` in the future finds nothing without walking the log', async () => {
    const result = await rowsTouched({ from: new Date(Date.now() + 86_400_000) });
    expect(result.found).toBe(0);
    expect(result.touched).toBeLessThan(1000);
  });
});
