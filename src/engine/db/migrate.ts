import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMigrations as runWorkerMigrations } from 'graphile-worker';
import pg from 'pg';
import { MigrationError } from '../errors.ts';
import { type Logger, silentLogger } from '../logger.ts';
import { MIGRATION_LOCK_KEY } from './lock-keys.ts';

/**
 * A line of migrations: numbered SQL files that belong to one owner and never interleave with another's
 * (River's migration lines). The engine has its own line, `outbox`; an application adds lines for its own
 * schemas (the service has `service`, the shop `shop`) and applies them with the same {@link migrate}.
 */
export interface MigrationLine {
  /** The line's name in the ledger (`outbox.migrations.line`): lower case letters, digits, `_`. */
  readonly name: string;
  /** Directory of its `NNNNNN_snake_name.sql` files. */
  readonly dir: string;
  /**
   * Files of Postbox 0.1's single ledger (`postbox.migrations`) that this line's files replace, so that a
   * database created by 0.1 upgrades without running anything twice. Only Postbox's own lines need it.
   */
  readonly adopts?: readonly LegacyMigration[];
}

/** One file of the 0.1 ledger and the files of a line that took over its content. */
export interface LegacyMigration {
  readonly legacyId: number;
  /** Its checksum in 0.1: an adopted database must have applied exactly that file. */
  readonly legacyChecksum: string;
  /** This line's files whose content the legacy file applied. */
  readonly files: readonly string[];
}

/** The engine's own line: the `outbox` schema (the log, consumers, the append function). */
export const ENGINE_MIGRATIONS: MigrationLine = Object.freeze({
  name: 'outbox',
  dir: fileURLToPath(new URL('../../../migrations/engine/', import.meta.url)),
  adopts: [
    {
      legacyId: 1,
      legacyChecksum: 'daa2e4250b16c919f72fbb2ee59ae7a04ce704a9cfa04b8f75c04b12a83ad76c',
      files: ['000001_event_log.sql'],
    },
    {
      legacyId: 2,
      legacyChecksum: '0745f1faa0414c7a64d201b0e9addb22de6f60368e32203eadb1fd29a54ad680',
      files: ['000002_consumers.sql'],
    },
    {
      legacyId: 5,
      legacyChecksum: '53df92af7b4f29971946f8294fc110d62c5e64c063cd43ef4363611299614b7b',
      files: ['000003_log_views_and_reader.sql'],
    },
  ],
});

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
  readonly line: string;
  readonly id: number;
  readonly name: string;
  readonly state: 'applied' | 'pending';
  readonly appliedAt: Date | undefined;
}

/** Reads `NNNNNN_name.sql` files in id order; rejects duplicate ids and badly named files. */
export async function readMigrationFiles(dir: string): Promise<MigrationFile[]> {
  const entries = (await fs.readdir(dir)).filter((file) => file.endsWith('.sql')).sort();
  const files: MigrationFile[] = [];
  for (const file of entries) {
    const match = /^(\d{6})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!match) throw new MigrationError(`Migration file name ${file} is not NNNNNN_snake_name.sql`);
    const sql = await fs.readFile(path.join(dir, file), 'utf8');
    const id = Number(match[1]);
    if (files.some((existing) => existing.id === id))
      throw new MigrationError(`Two migrations share id ${id} in ${dir}`);
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

/** Where {@link migrate} and {@link migrationStatus} connect: the application's pool, or a URL. */
export type DatabaseTarget = { readonly pool: pg.Pool } | { readonly connectionString: string };

/** Options of {@link migrate}. */
export type MigrateOptions = DatabaseTarget & {
  /**
   * Lines applied after the engine's own, in this order (an application's schemas).
   * Default: none.
   */
  readonly lines?: readonly MigrationLine[];
  /** Also install graphile-worker's schema (the engine's job queue). Default `true`. */
  readonly workerSchema?: boolean;
  /** Default: logs nothing. */
  readonly logger?: Logger;
};

/**
 * Installs or upgrades the engine's schema (`outbox`) and graphile-worker's (`graphile_worker`), then the
 * given application lines. Nothing else is created. Each file runs in its own transaction and is recorded
 * in `outbox.migrations` with its checksum; a session advisory lock serialises concurrent callers (the
 * second waits, then finds nothing pending). Forward-only: an edited or unknown applied migration, or a
 * new file numbered below the last applied one of its line, stops with a {@link MigrationError} before
 * anything is applied.
 *
 * @returns the files applied by this call, as `line/file`.
 */
export async function migrate(options: MigrateOptions): Promise<string[]> {
  const logger = options.logger ?? silentLogger;
  const lines = [ENGINE_MIGRATIONS, ...(options.lines ?? [])];
  checkLineNames(lines);
  const plans = await Promise.all(
    lines.map(async (line) => ({ line, files: await readMigrationFiles(line.dir) })),
  );
  return withPool(options, async (pool) => {
    const client = await pool.connect();
    const appliedNow: string[] = [];
    try {
      await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
      try {
        await ensureLedger(client);
        for (const { line, files } of plans) {
          await adoptLegacy(client, line, files);
          const pending = planPending(line, files, await readApplied(client, line.name));
          for (const file of pending) {
            await client.query('begin');
            try {
              await client.query(file.sql);
              await client.query(
                'insert into outbox.migrations (line, id, name, checksum) values ($1, $2, $3, $4)',
                [line.name, file.id, file.name, file.checksum],
              );
              await client.query('commit');
            } catch (error) {
              await client.query('rollback');
              throw new MigrationError(
                `Migration ${line.name}/${file.name} failed: ${(error as Error).message}`,
                {
                  cause: error,
                },
              );
            }
            appliedNow.push(`${line.name}/${file.name}`);
            logger.info({ migration: `${line.name}/${file.name}` }, 'applied migration');
          }
          // graphile-worker's schema right after the engine's: the engine cannot run without it.
          if (line === ENGINE_MIGRATIONS && (options.workerSchema ?? true)) await migrateWorkerSchema(pool);
        }
      } finally {
        await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      }
    } finally {
      client.release();
    }
    return appliedNow;
  });
}

/**
 * graphile-worker's migrations, on a small pool of their own made like the caller's: graphile-worker warns
 * about pools without error listeners, and the application's pool is not ours to add listeners to.
 */
async function migrateWorkerSchema(pool: pg.Pool): Promise<void> {
  const workerPool = new pg.Pool({ ...pool.options, max: 1, application_name: 'postbox-migrate' });
  workerPool.on('error', () => {}); // an idle client's loss surfaces on the next query instead
  workerPool.on('connect', (client) => client.on('error', () => {}));
  try {
    await runWorkerMigrations({ pgPool: workerPool, logger: undefined });
  } finally {
    await workerPool.end();
  }
}

/** Options of {@link migrationStatus}. */
export type MigrationStatusOptions = DatabaseTarget & {
  /** Application lines to report after the engine's. Default: none. */
  readonly lines?: readonly MigrationLine[];
};

/** Lists every known migration with its state; also validates checksums (throws on drift). Changes nothing. */
export async function migrationStatus(options: MigrationStatusOptions): Promise<MigrationStatus[]> {
  const lines = [ENGINE_MIGRATIONS, ...(options.lines ?? [])];
  checkLineNames(lines);
  const plans = await Promise.all(
    lines.map(async (line) => ({ line, files: await readMigrationFiles(line.dir) })),
  );
  return withPool(options, async (pool) => {
    const client = await pool.connect();
    try {
      const exists = await client.query(`select to_regclass('outbox.migrations') is not null as exists`);
      const statuses: MigrationStatus[] = [];
      for (const { line, files } of plans) {
        const applied = exists.rows[0]?.exists ? await readApplied(client, line.name) : [];
        planPending(line, files, applied); // validation only
        const byId = new Map(applied.map((row) => [row.id, row]));
        for (const file of files) {
          const row = byId.get(file.id);
          statuses.push({
            line: line.name,
            id: file.id,
            name: file.name,
            state: row ? 'applied' : 'pending',
            appliedAt: row?.applied_at,
          });
        }
      }
      return statuses;
    } finally {
      client.release();
    }
  });
}

/** Runs `fn` on the caller's pool, or on a short-lived one made from the connection string. */
async function withPool<T>(target: DatabaseTarget, fn: (pool: pg.Pool) => Promise<T>): Promise<T> {
  if ('pool' in target) return fn(target.pool);
  const pool = new pg.Pool({
    connectionString: target.connectionString,
    max: 2,
    application_name: 'postbox-migrate',
  });
  pool.on('error', () => {}); // an idle client's loss surfaces on the next query instead
  pool.on('connect', (client) => client.on('error', () => {}));
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

function checkLineNames(lines: readonly MigrationLine[]): void {
  const seen = new Set<string>();
  for (const line of lines) {
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(line.name)) {
      throw new MigrationError(`Migration line name "${line.name}" must be lower case letters, digits and _`);
    }
    if (seen.has(line.name)) throw new MigrationError(`Two migration lines are named ${line.name}`);
    seen.add(line.name);
  }
}

async function ensureLedger(client: pg.PoolClient): Promise<void> {
  await client.query(`
    create schema if not exists outbox;
    create table if not exists outbox.migrations (
      line text not null,
      id int not null,
      name text not null,
      checksum text not null,
      applied_at timestamptz not null default now(),
      primary key (line, id)
    );`);
}

async function readApplied(client: pg.PoolClient, line: string): Promise<AppliedRow[]> {
  const result = await client.query<AppliedRow>(
    'select id, name, checksum, applied_at from outbox.migrations where line = $1 order by id',
    [line],
  );
  return result.rows;
}

/**
 * A database created by Postbox 0.1 recorded its five files in `postbox.migrations`. The first time a line
 * with `adopts` meets such a database, the files of the line that replace applied legacy files are recorded
 * as applied (with their current checksums) instead of being run again. The legacy ledger is left in place.
 */
async function adoptLegacy(
  client: pg.PoolClient,
  line: MigrationLine,
  files: readonly MigrationFile[],
): Promise<void> {
  if (!line.adopts?.length) return;
  const known = await client.query('select 1 from outbox.migrations where line = $1 limit 1', [line.name]);
  if (known.rowCount) return;
  const legacy = await client.query(`select to_regclass('postbox.migrations') is not null as exists`);
  if (!legacy.rows[0]?.exists) return;
  const { rows } = await client.query<{ id: number; name: string; checksum: string }>(
    'select id, name, checksum from postbox.migrations',
  );
  const byId = new Map(rows.map((row) => [row.id, row]));
  const byName = new Map(files.map((file) => [file.name, file]));
  await client.query('begin');
  try {
    for (const adoption of line.adopts) {
      const row = byId.get(adoption.legacyId);
      if (!row) continue;
      if (row.checksum !== adoption.legacyChecksum) {
        throw new MigrationError(
          `The database applied ${row.name} with checksum ${row.checksum.slice(0, 12)}…, not the file Postbox 0.1 ` +
            'shipped; it cannot be upgraded automatically.',
        );
      }
      for (const name of adoption.files) {
        const file = byName.get(name);
        if (!file) throw new MigrationError(`Line ${line.name} adopts ${name}, which is not in ${line.dir}`);
        await client.query(
          `insert into outbox.migrations (line, id, name, checksum) values ($1, $2, $3, $4)
           on conflict do nothing`,
          [line.name, file.id, file.name, file.checksum],
        );
      }
    }
    await client.query('commit');
  } catch (error) {
    await client.query('rollback');
    throw error;
  }
}

function planPending(
  line: MigrationLine,
  files: readonly MigrationFile[],
  applied: readonly AppliedRow[],
): MigrationFile[] {
  const byId = new Map(files.map((file) => [file.id, file]));
  for (const row of applied) {
    const file = byId.get(row.id);
    if (!file) {
      throw new MigrationError(
        `The database has migration ${line.name}/${row.name}, which this version does not have. Refusing to ` +
          'run older code against a newer schema.',
      );
    }
    if (file.checksum !== row.checksum) {
      throw new MigrationError(
        `Migration ${line.name}/${row.name} was edited after it was applied (checksum ${row.checksum.slice(0, 12)}… ` +
          `in the database, ${file.checksum.slice(0, 12)}… on disk). Migrations are forward-only: revert the ` +
          'edit and add a new migration instead.',
      );
    }
  }
  const lastApplied = applied.at(-1)?.id ?? 0;
  const appliedIds = new Set(applied.map((row) => row.id));
  const pending = files.filter((file) => !appliedIds.has(file.id));
  const early = pending.find((file) => file.id < lastApplied);
  if (early) {
    throw new MigrationError(
      `Migration ${line.name}/${early.name} is numbered below the last applied one (${lastApplied}); renumber it after it.`,
    );
  }
  return pending;
}
