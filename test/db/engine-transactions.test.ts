import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

/**
 * The engine's Kysely pool holds a transaction's BEGIN and sends it with the first statement when that one
 * has no parameters (one round trip fewer per delivery transaction). Whatever the first statement, a
 * transaction must behave exactly as with a BEGIN of its own.
 */
describe('transactions through the engine pool', () => {
  let t: TestDatabase;
  const backendOf = async () =>
    (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(t.db)).rows[0]?.pid;

  beforeAll(async () => {
    t = await createTestDatabase({ poolSize: 1 });
    await sql`create table notes (id int primary key, body text not null)`.execute(t.db);
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('commits a transaction whose first statement has no parameters, and returns its rows', async () => {
    const rows = await t.db.transaction().execute(async (trx) => {
      const first = await sql<{ xid: string | null }>`select txid_current_if_assigned()::text as xid`.execute(
        trx,
      );
      await sql`insert into notes values (1, 'one')`.execute(trx);
      const same = await sql<{
        a: string;
        b: string;
      }>`select now()::text as a, statement_timestamp()::text as b`.execute(trx);
      return { first: first.rows, same: same.rows };
    });
    expect(rows.first).toEqual([{ xid: null }]);
    expect(rows.same).toHaveLength(1);
    const { rows: notes } = await sql`select id, body from notes where id = 1`.execute(t.db);
    expect(notes).toEqual([{ id: 1, body: 'one' }]);
  });

  it('runs every statement of it in one transaction (now() is the transaction start)', async () => {
    const times = await t.db.transaction().execute(async (trx) => {
      const a = await sql<{ t: string }>`select now()::text as t`.execute(trx);
      await sql`select pg_sleep(0.02)`.execute(trx);
      const b = await sql<{ t: string }>`select now()::text as t`.execute(trx);
      return [a.rows[0]?.t, b.rows[0]?.t];
    });
    expect(times[0]).toBeDefined();
    expect(times[0]).toBe(times[1]);
  });

  it('rolls back everything when the first statement fails, and the connection stays usable', async () => {
    const pid = await backendOf();
    await expect(
      t.db.transaction().execute(async (trx) => {
        await sql`insert into notes values (2, null)`.execute(trx);
      }),
    ).rejects.toMatchObject({ code: '23502' });
    await expect(
      t.db.transaction().execute(async (trx) => {
        await sql`insert into notes values (3, 'three')`.execute(trx);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    const { rows } = await sql<{
      n: number;
    }>`select count(*)::int as n from notes where id in (2, 3)`.execute(t.db);
    expect(rows).toEqual([{ n: 0 }]);
    // One connection in the pool: the same session, not in a transaction any more.
    expect(await backendOf()).toBe(pid);
    // A statement outside a transaction is its own: it started with it (a transaction left open by a lost
    // ROLLBACK would have started earlier).
    const { rows: state } = await sql<{ own: boolean }>`
      select xact_start = query_start as own from pg_stat_activity where pid = pg_backend_pid()`.execute(
      t.db,
    );
    expect(state).toEqual([{ own: true }]);
  });

  it('rolls back a transaction whose first statement has parameters', async () => {
    const body = 'four';
    await expect(
      t.db.transaction().execute(async (trx) => {
        await sql`insert into notes values (4, ${body})`.execute(trx);
        await sql`insert into notes values (4, ${body})`.execute(trx);
      }),
    ).rejects.toMatchObject({ code: '23505' });
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from notes where id = 4`.execute(
      t.db,
    );
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('takes a multi-statement first statement, a savepoint and an empty transaction', async () => {
    await t.db.transaction().execute(async () => undefined);
    const trx = await t.db.startTransaction().execute();
    await sql.raw(`select set_config('lock_timeout', '1s', true); savepoint first`).execute(trx);
    await sql`insert into notes values (5, 'five')`.execute(trx);
    await sql.raw('rollback to savepoint first').execute(trx);
    await sql`insert into notes values (6, 'six')`.execute(trx);
    const { rows: timeout } = await sql<{ v: string }>`select current_setting('lock_timeout') as v`.execute(
      trx,
    );
    expect(timeout).toEqual([{ v: '1s' }]);
    await trx.commit().execute();
    const { rows } = await sql<{ id: number }>`select id from notes where id in (5, 6) order by id`.execute(
      t.db,
    );
    expect(rows).toEqual([{ id: 6 }]);
    // set_config(..., true) was local to that transaction.
    const { rows: after } = await sql<{ v: string }>`select current_setting('lock_timeout') as v`.execute(
      t.db,
    );
    expect(after).toEqual([{ v: '0' }]);
  });
});
