import { promises as fs } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SERVICE_LINES } from '../../src/db/migration-lines.ts';
import {
  ENGINE_MIGRATIONS,
  migrate,
  migrationStatus,
  readMigrationFiles,
} from '../../src/engine/db/migrate.ts';
import { createPool } from '../../src/engine/db/pool.ts';
import { MigrationError } from '../../src/engine/errors.ts';
import { silentLogger } from '../../src/logger.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { makeTempDir } from './processes.ts';

// Every test gets an empty database (cloned from template0, not the migrated template) and an empty
// migrations directory it writes its own files into.
let database: TestDatabase;
let dir: string;

beforeEach(async () => {
  database = await createTestDatabase({ migrated: false, poolSize: 4 });
  dir = await makeTempDir('postbox-migrations-');
});

afterEach(async () => {
  await database?.drop();
  await fs.rm(dir, { recursive: true, force: true });
});

async function writeMigration(name: string, sql: string): Promise<void> {
  await fs.writeFile(path.join(dir, name), sql);
}

/** The temp directory as an application's migration line. */
const appLine = () => ({ name: 'app', dir });

/**
 * Applies the temp directory's line (after the engine's own, which `migrate` always applies first; graphile-
 * worker's schema is irrelevant here) and returns the app line's files it applied.
 */
async function migrateDir(pool: pg.Pool = database.pool): Promise<string[]> {
  const applied = await migrate({ pool, lines: [appLine()], workerSchema: false });
  return applied.filter((name) => name.startsWith('app/')).map((name) => name.slice('app/'.length));
}

/** The app line's status, validating like `postbox migrate --status`. */
async function appStatus(): Promise<
  Array<{ id: number; name: string; state: string; appliedAt: Date | undefined }>
> {
  const status = await migrationStatus({ pool: database.pool, lines: [appLine()] });
  return status.filter((row) => row.line === 'app').map(({ line: _line, ...row }) => row);
}

async function appliedNames(): Promise<string[]> {
  const exists = await database.pool.query(`select to_regclass('outbox.migrations') is not null as exists`);
  if (!exists.rows[0]?.exists) return [];
  const { rows } = await database.pool.query<{ name: string }>(
    "select name from outbox.migrations where line = 'app' order by id",
  );
  return rows.map((row) => row.name);
}

async function tableExists(name: string): Promise<boolean> {
  const { rows } = await database.pool.query<{ exists: boolean }>(
    'select to_regclass($1) is not null as exists',
    [name],
  );
  return rows[0]?.exists ?? false;
}

/** The MigrationError `promise` rejects with; fails the test if it resolves or rejects with something else. */
async function migrationErrorFrom(promise: Promise<unknown>): Promise<MigrationError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(MigrationError);
  return error as MigrationError;
}

describe('migrate', () => {
  it('applies files in id order and records each with its checksum', async () => {
    // Written out of order; each depends on the one before it.
    await writeMigration('000010_third.sql', `insert into steps (name) values ('third');`);
    await writeMigration('000002_second.sql', `insert into steps (name) values ('second');`);
    await writeMigration(
      '000001_first.sql',
      `create table steps (seq int generated always as identity, name text not null);
       insert into steps (name) values ('first');`,
    );

    const applied = await migrateDir();

    expect(applied).toEqual(['000001_first.sql', '000002_second.sql', '000010_third.sql']);
    const steps = await database.pool.query<{ name: string }>('select name from steps order by seq');
    expect(steps.rows.map((row) => row.name)).toEqual(['first', 'second', 'third']);
    const recorded = await database.pool.query<{ id: number; name: string; checksum: string }>(
      "select id, name, checksum from outbox.migrations where line = 'app' order by id",
    );
    const files = await readMigrationFiles(dir);
    expect(recorded.rows).toEqual(files.map(({ id, name, checksum }) => ({ id, name, checksum })));
    expect(recorded.rows.map((row) => row.id)).toEqual([1, 2, 10]);
  });

  it('runs each file in its own transaction: a failing file leaves the ones before it applied and nothing of itself', async () => {
    await writeMigration('000001_good.sql', 'create table good (id int);');
    await writeMigration(
      '000002_bad.sql',
      `create table half_done (id int);
       insert into good values (1);
       select 1 / 0;`,
    );
    await writeMigration('000003_after.sql', 'create table after_bad (id int);');

    const error = await migrationErrorFrom(migrateDir());

    expect(error.code).toBe('MIGRATION_FAILED');
    expect(error.message).toContain('000002_bad.sql');
    expect(error.message).toContain('division by zero');
    expect(await appliedNames()).toEqual(['000001_good.sql']);
    expect(await tableExists('good')).toBe(true);
    expect(await tableExists('half_done')).toBe(false);
    expect(await tableExists('after_bad')).toBe(false);
    const good = await database.pool.query('select count(*)::int as n from good');
    expect(good.rows[0].n).toBe(0);

    // Fixing the file lets the next run carry on from where it stopped.
    await writeMigration('000002_bad.sql', 'create table fixed (id int);');
    expect(await migrateDir()).toEqual(['000002_bad.sql', '000003_after.sql']);
  });

  it('refuses to run when an applied file was edited, naming the file and applying nothing', async () => {
    await writeMigration('000001_first.sql', 'create table first (id int);');
    await writeMigration('000002_second.sql', 'create table second (id int);');
    await migrateDir();

    await writeMigration('000001_first.sql', 'create table first (id int, extra text);');
    await writeMigration('000003_third.sql', 'create table third (id int);');
    const error = await migrationErrorFrom(migrateDir());

    expect(error.message).toContain('000001_first.sql');
    expect(await appliedNames()).toEqual(['000001_first.sql', '000002_second.sql']);
    expect(await tableExists('third')).toBe(false);
    // migrate --status validates too.
    await migrationErrorFrom(appStatus());
  });

  it('refuses a new file numbered below the last applied one', async () => {
    await writeMigration('000001_first.sql', 'create table first (id int);');
    await writeMigration('000003_third.sql', 'create table third (id int);');
    await migrateDir();

    await writeMigration('000002_late.sql', 'create table late (id int);');
    const error = await migrationErrorFrom(migrateDir());

    expect(error.message).toContain('000002_late.sql');
    expect(await tableExists('late')).toBe(false);
    expect(await appliedNames()).toEqual(['000001_first.sql', '000003_third.sql']);
  });

  it.each([['1_short_id.sql'], ['000001-dash.sql'], ['000001_CamelCase.sql'], ['000001_space name.sql']])(
    'refuses the badly named file %s before touching the database',
    async (name) => {
      await writeMigration('000002_fine.sql', 'create table fine (id int);');
      await writeMigration(name, 'create table oops (id int);');

      const error = await migrationErrorFrom(migrateDir());

      expect(error.message).toContain(name);
      expect(await tableExists('fine')).toBe(false);
      expect(await appliedNames()).toEqual([]);
    },
  );

  it('ignores files that are not .sql', async () => {
    await writeMigration('README.md', '# notes');
    await writeMigration('000001_first.sql', 'create table first (id int);');
    expect(await migrateDir()).toEqual(['000001_first.sql']);
  });

  it('refuses two files with the same id', async () => {
    await writeMigration('000001_one.sql', 'create table one (id int);');
    await writeMigration('000001_other.sql', 'create table other (id int);');

    const error = await migrationErrorFrom(migrateDir());

    expect(error.message).toMatch(/share id 1\b/);
    expect(await tableExists('one')).toBe(false);
    expect(await appliedNames()).toEqual([]);
  });

  it('refuses a database holding a migration this code does not have', async () => {
    await writeMigration('000001_first.sql', 'create table first (id int);');
    await writeMigration('000002_newer.sql', 'create table newer (id int);');
    await migrateDir();

    await fs.rm(path.join(dir, '000002_newer.sql'));
    const error = await migrationErrorFrom(migrateDir());

    expect(error.message).toContain('000002_newer.sql');
    await migrationErrorFrom(appStatus());
  });

  it('lists applied and pending migrations without changing anything', async () => {
    await writeMigration('000001_first.sql', 'create table first (id int);');
    expect(await appStatus()).toEqual([
      { id: 1, name: '000001_first.sql', state: 'pending', appliedAt: undefined },
    ]);
    // Status on an empty database does not create the bookkeeping table.
    expect(await tableExists('outbox.migrations')).toBe(false);

    await migrateDir();
    await writeMigration('000002_second.sql', 'create table second (id int);');
    const status = await appStatus();

    expect(status.map(({ name, state }) => ({ name, state }))).toEqual([
      { name: '000001_first.sql', state: 'applied' },
      { name: '000002_second.sql', state: 'pending' },
    ]);
    expect(status[0]?.appliedAt).toBeInstanceOf(Date);
    expect(status[1]?.appliedAt).toBeUndefined();
    expect(await tableExists('second')).toBe(false);
  });

  it('is idempotent: a second run applies nothing', async () => {
    await writeMigration(
      '000001_first.sql',
      `create table side_effects (note text); insert into side_effects values ('first');`,
    );
    await writeMigration('000002_second.sql', `insert into side_effects values ('second');`);

    expect(await migrateDir()).toHaveLength(2);
    expect(await migrateDir()).toEqual([]);

    const { rows } = await database.pool.query('select count(*)::int as n from side_effects');
    expect(rows[0].n).toBe(2);
    expect(await appliedNames()).toHaveLength(2);
  });

  it('applies every file exactly once when four processes migrate at the same time', async () => {
    await writeMigration('000001_table.sql', 'create table side_effects (migration int not null);');
    for (let id = 2; id <= 8; id++) {
      // pg_sleep widens the window in which an unserialised second migrator would also pick the file up.
      await writeMigration(
        `${String(id).padStart(6, '0')}_step.sql`.replace('_step', `_step_${id}`),
        `select pg_sleep(0.02); insert into side_effects values (${id});`,
      );
    }
    const pools = Array.from({ length: 4 }, () =>
      createPool({ connectionString: database.url, max: 2, logger: silentLogger }),
    );
    try {
      const results = await Promise.all(pools.map((pool) => migrateDir(pool)));

      expect(results.flat().sort()).toEqual((await readMigrationFiles(dir)).map((file) => file.name));
      const recorded = await database.pool.query(
        "select count(*)::int as n from outbox.migrations where line = 'app'",
      );
      expect(recorded.rows[0].n).toBe(8);
      const effects = await database.pool.query<{ migration: number }>(
        'select migration from side_effects order by migration',
      );
      expect(effects.rows.map((row) => row.migration)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });

  it("applies the repository's migrations and graphile-worker's schema to an empty database", async () => {
    const expected = (await readMigrationFiles(ENGINE_MIGRATIONS.dir)).map((file) => `outbox/${file.name}`);
    expect(expected).toContain('outbox/000001_event_log.sql');

    const applied = await migrate({ pool: database.pool });

    expect(applied).toEqual(expected);
    expect(await tableExists('outbox.events')).toBe(true);
    expect(await tableExists('outbox.streams')).toBe(true);
    expect(await tableExists('graphile_worker.migrations')).toBe(true);
    const workerMigrations = await database.pool.query(
      'select count(*)::int as n from graphile_worker.migrations',
    );
    expect(workerMigrations.rows[0].n).toBeGreaterThan(0);
    expect((await migrationStatus({ pool: database.pool })).every((row) => row.state === 'applied')).toBe(
      true,
    );

    // Running again (as every `postbox serve` start does) changes nothing.
    expect(await migrate({ pool: database.pool })).toEqual([]);
    const again = await database.pool.query('select count(*)::int as n from graphile_worker.migrations');
    expect(again.rows[0].n).toBe(workerMigrations.rows[0].n);
  });

  it("applies the repository's migrations once when several services start together", async () => {
    const pools = Array.from({ length: 3 }, () =>
      createPool({ connectionString: database.url, max: 3, logger: silentLogger }),
    );
    try {
      const results = await Promise.all(pools.map((pool) => migrate({ pool, lines: SERVICE_LINES })));
      const expected = (
        await Promise.all(
          [ENGINE_MIGRATIONS, ...SERVICE_LINES].map(async (line) =>
            (await readMigrationFiles(line.dir)).map((file) => `${line.name}/${file.name}`),
          ),
        )
      ).flat();
      expect(results.flat().sort()).toEqual([...expected].sort());
      const { rows } = await database.pool.query<{ name: string }>(
        "select line || '/' || name as name from outbox.migrations",
      );
      expect(rows.map((row) => row.name).sort()).toEqual([...expected].sort());
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });
});
