import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMigrations as runWorkerMigrations } from 'graphile-worker';
import type pg from 'pg';
import { MigrationError } from '../errors.ts';
import { type Logger, silentLogger } from '../logger.ts';

/** The repository's `migrations/` directory. */
export const migrationsDir = fileURLToPath(new URL('../../migrations/', import.meta.url));

/**
 * Session advisory lock key held while migrating, so that processes starting together apply each file
 * once: the second waits, then finds nothing pending. (Arbitrary constant: "pbox" in ASCII.)
 */
const MIGRATION_LOCK_KEY = 0x70626f78;

/** One `NNNNNN_name.sql` file. */
export interface MigrationFile {
  readonly id: number;
  readonly name: string;
  readonly sql: string;
  /** sha256 of the file's bytes; an applied migration whose file changed is refused. */
  readonly checksum: string;
}

/** A migration's state as `postbox migrate --status` shows it. */
export interface MigrationStatus {
  readonly id: number;
  readonly name: string;
  readonly state: 'applied' | 'pending';
  readonly appliedAt: Date | undefined;
}

/** Reads `NNNNNN_name.sql` files in id order; rejects duplicate ids and badly named files. */
export async function readMigrationFiles(dir: string = migrationsDir): Promise<MigrationFile[]> {
  const entries = (await fs.readdir(dir)).filter((file) => file.endsWith('.sql')).sort();
  const files: MigrationFile[] = [];
  for (const file of entries) {
    const match = /^(\d{6})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!match) throw new MigrationError(`Migration file name ${file} is not NNNNNN_snake_name.sql`);
    const sql = await fs.readFile(path.join(dir, file), 'utf8');
    const id = Number(match[1]);
    if (files.some((existing) => existing.id === id))
      throw new MigrationError(`Two migrations share id ${id}`);
    files.push({ id, name: file, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return files;
}

interface AppliedRow {
  id: number;
  name: string;
  checksum: string;
  applied_at: Date;
}

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /** Directory of the migration files. Default: the repository's `migrations/`. */
  readonly dir?: string;
  /** Also run graphile-worker's own migrations. Default `true`. */
  readonly workerSchema?: boolean;
  readonly logger?: Logger;
}

/**
 * Applies pending migrations, each file in its own transaction, recorded in `postbox.migrations` with its
 * checksum; then graphile-worker's migrations. Runs under a session advisory lock, so concurrent callers
 * serialise. Forward-only: an edited or unknown applied migration, or a new file numbered below the last
 * applied one, stops with a {@link MigrationError} before anything is applied.
 *
 * @returns the names of the files applied by this call.
 */
export async function migrate(pool: pg.Pool, options: MigrateOptions = {}): Promise<string[]> {
  const logger = options.logger ?? silentLogger;
  const files = await readMigrationFiles(options.dir);
  // One connection holds the advisory lock while graphile-worker's migrations take another from the pool.
  if ((options.workerSchema ?? true) && (pool.options.max ?? 10) < 2) {
    throw new MigrationError('migrate() needs a pool of at least 2 connections');
  }
  const client = await pool.connect();
  const appliedNow: string[] = [];
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await ensureMigrationsTable(client);
      const applied = await readApplied(client);
      const pending = planPending(files, applied);
      for (const file of pending) {
        await client.query('begin');
        try {
          await client.query(file.sql);
          await client.query('insert into postbox.migrations (id, name, checksum) values ($1, $2, $3)', [
            file.id,
            file.name,
            file.checksum,
          ]);
          await client.query('commit');
        } catch (error) {
          await client.query('rollback');
          throw new MigrationError(`Migration ${file.name} failed: ${(error as Error).message}`, {
            cause: error,
          });
        }
        appliedNow.push(file.name);
        logger.info({ migration: file.name }, 'applied migration');
      }
      if (options.workerSchema ?? true) await runWorkerMigrations({ pgPool: pool, logger: undefined });
    } finally {
      await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    client.release();
  }
  return appliedNow;
}

/** Lists every known migration with its state; also validates checksums (throws on drift). */
export async function migrationStatus(pool: pg.Pool, dir?: string): Promise<MigrationStatus[]> {
  const files = await readMigrationFiles(dir);
  const client = await pool.connect();
  try {
    const exists = await client.query(`select to_regclass('postbox.migrations') is not null as exists`);
    const applied = exists.rows[0]?.exists ? await readApplied(client) : [];
    planPending(files, applied); // validation only
    const byId = new Map(applied.map((row) => [row.id, row]));
    return files.map((file) => {
      const row = byId.get(file.id);
      return { id: file.id, name: file.name, state: row ? 'applied' : 'pending', appliedAt: row?.applied_at };
    });
  } finally {
    client.release();
  }
}

async function ensureMigrationsTable(client: pg.PoolClient): Promise<void> {
  await client.query(`
    create schema if not exists postbox;
    create table if not exists postbox.migrations (
      id int primary key,
      name text not null,
      checksum text not null,
      applied_at timestamptz not null default now()
    );`);
}

async function readApplied(client: pg.PoolClient): Promise<AppliedRow[]> {
  const result = await client.query<AppliedRow>(
    'select id, name, checksum, applied_at from postbox.migrations order by id',
  );
  return result.rows;
}

function planPending(files: readonly MigrationFile[], applied: readonly AppliedRow[]): MigrationFile[] {
  const byId = new Map(files.map((file) => [file.id, file]));
  for (const row of applied) {
    const file = byId.get(row.id);
    if (!file) {
      throw new MigrationError(
        `The database has migration ${row.name}, which this version of Postbox does not have. Refusing to run ` +
          'older code against a newer schema.',
      );
    }
    if (file.checksum !== row.checksum) {
      throw new MigrationError(
        `Migration ${row.name} was edited after it was applied (checksum ${row.checksum.slice(0, 12)}… in the ` +
          `database, ${file.checksum.slice(0, 12)}… on disk). Migrations are forward-only: revert the edit and ` +
          'add a new migration instead.',
      );
    }
  }
  const lastApplied = applied.at(-1)?.id ?? 0;
  const appliedIds = new Set(applied.map((row) => row.id));
  const pending = files.filter((file) => !appliedIds.has(file.id));
  const early = pending.find((file) => file.id < lastApplied);
  if (early) {
    throw new MigrationError(
      `Migration ${early.name} is numbered below the last applied one (${lastApplied}); renumber it after it.`,
    );
  }
  return pending;
}
