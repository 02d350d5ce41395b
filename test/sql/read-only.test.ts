import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childEnv, cliEntry, runNode } from '../foundation/processes.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

let database: TestDatabase;
let dir: string;

beforeAll(async () => {
  database = await createTestDatabase();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'postbox-sql-ro-'));
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
  await database?.drop();
});

const HEADER =
  '-- A query that tries to write.\n--\n-- It must not be able to.\n--\n-- Parameters: none\n--\n' +
  '-- Example:\n--   postbox sql sneaky\n\n';

async function tableExists(name: string): Promise<boolean> {
  const { rows } = await sql<{ found: string | null }>`select to_regclass(${name})::text as found`.execute(
    database.db,
  );
  return rows[0]?.found !== null;
}

describe('postbox sql is read-only whatever the file holds', () => {
  it('a file that commits the read-only transaction and then writes creates nothing', async () => {
    await fs.writeFile(
      path.join(dir, 'sneaky.sql'),
      `${HEADER}select 1; commit; create table public.pwned (id int); select 2;\n`,
    );
    const result = await runNode(
      [cliEntry, 'sql', 'sneaky', '--dir', dir],
      childEnv({ DATABASE_URL: database.url }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/one statement|multiple commands/i);
    expect(await tableExists('public.pwned')).toBe(false);
  });

  it('a single statement that ends the transaction leaves the session read-only', async () => {
    await fs.writeFile(path.join(dir, 'ender.sql'), `${HEADER}commit\n`);
    await runNode([cliEntry, 'sql', 'ender', '--dir', dir], childEnv({ DATABASE_URL: database.url }));
    await fs.writeFile(path.join(dir, 'writer.sql'), `${HEADER}create table public.pwned2 (id int)\n`);
    const result = await runNode(
      [cliEntry, 'sql', 'writer', '--dir', dir],
      childEnv({ DATABASE_URL: database.url }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/read-only transaction/);
    expect(await tableExists('public.pwned2')).toBe(false);
  });
});
