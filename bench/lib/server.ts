import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { SERVICE_LINES } from '../../src/db/migration-lines.ts';
import { migrate } from '../../src/engine/db/migrate.ts';
import { silentLogger } from '../../src/logger.ts';

/** The Postgres server the bench runs on: a fresh embedded one, or one given by `--database-url`. */
export interface BenchServer {
  readonly kind: 'embedded' | 'external';
  /**
   * Creates a fresh database with the bench's own tables, migrated (Postbox + graphile-worker) unless
   * `options.migrate` is `false` (a peer system's database: only its own schema goes there).
   */
  createDatabase(label: string, options?: { readonly migrate?: boolean }): Promise<BenchDatabase>;
  /** Server facts for the results file. */
  describe(): Promise<ServerFacts>;
  /** Drops what the bench created; stops and deletes an embedded server. */
  stop(): Promise<void>;
}

/** One scenario's database. Pools made through it are ended by {@link BenchDatabase.drop}. */
export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  /** A pool on this database. `sessionOptions` are `-c name=value` settings for every connection. */
  pool(max: number, sessionOptions?: Readonly<Record<string, string>>): pg.Pool;
  /** Seconds it took to create and migrate it. */
  readonly setupSeconds: number;
  /** Ends its pools and drops it. */
  drop(): Promise<void>;
}

/** What the results file records about the server. */
export interface ServerFacts {
  readonly kind: 'embedded' | 'external';
  readonly version: string;
  readonly settings: Record<string, string>;
}

/** Settings recorded with every run: the ones that decide commit cost and memory. */
const RECORDED_SETTINGS = [
  'fsync',
  'synchronous_commit',
  'full_page_writes',
  'wal_sync_method',
  'wal_level',
  'shared_buffers',
  'max_wal_size',
  'checkpoint_timeout',
  'max_connections',
  'work_mem',
  'effective_io_concurrency',
];

/**
 * The bench's own tables: the order row of every measured transaction, and the plain outbox table of the
 * baseline (the minimal hand-written outbox: a serial key and the event's columns, no trigger, no other
 * index). Not a migration: they exist only in bench databases.
 */
const BENCH_SCHEMA = `
  create schema bench;
  create table bench.orders (
    id uuid primary key,
    customer_id text not null,
    total_cents integer not null,
    created_at timestamptz not null default now()
  );
  create table bench.outbox_raw (
    id bigint generated always as identity primary key,
    event_id uuid not null,
    type text not null,
    stream_id text not null,
    payload jsonb not null,
    created_at timestamptz not null default now()
  );`;

/**
 * Starts the bench's server: a fresh embedded Postgres in a temporary directory with durable settings
 * (fsync, synchronous_commit and full_page_writes at their defaults: on), or the server of `databaseUrl`,
 * where the bench creates and drops databases of its own (the role needs CREATEDB).
 */
export async function startBenchServer(databaseUrl: string | undefined): Promise<BenchServer> {
  let adminUrl: string;
  let teardown: () => Promise<void>;
  let kind: BenchServer['kind'];
  if (databaseUrl) {
    adminUrl = databaseUrl;
    kind = 'external';
    teardown = async () => undefined;
  } else {
    // mkdtemp makes a 0700 directory; as root the server runs as `postgres` and must reach it.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'postbox-bench-'));
    await fs.chmod(dir, 0o755);
    const server = await startEmbeddedPostgres({ dir, logger: silentLogger });
    adminUrl = server.connectionString;
    kind = 'embedded';
    // The server runs detached (its own process group) and would outlive a bench that dies or is
    // interrupted, holding its port and a temp directory. Ctrl-C / SIGTERM stop it and remove the
    // directory; any other exit at least stops it (an 'exit' handler cannot wait for the removal).
    const killOnExit = () => {
      try {
        process.kill(server.pid, 'SIGINT');
      } catch {
        // already gone
      }
    };
    const onSignal = (signal: NodeJS.Signals) => {
      process.stderr.write(`\npostbox bench: ${signal}, stopping the embedded Postgres\n`);
      void server
        .stop()
        .then(() => fs.rm(dir, { recursive: true, force: true }))
        .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    };
    process.once('exit', killOnExit);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    teardown = async () => {
      process.off('exit', killOnExit);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await server.stop();
      await fs.rm(dir, { recursive: true, force: true });
    };
  }
  const prefix = `postbox_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
  const live = new Set<BenchDatabase>();
  let counter = 0;

  const admin = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  };

  return {
    kind,
    async createDatabase(label, options) {
      const started = performance.now();
      const name = `${prefix}_${++counter}_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`.slice(0, 63);
      await admin((client) => client.query(`create database ${name}`));
      const url = withDatabase(adminUrl, name);
      const pools = new Set<pg.Pool>();
      const setupPool = new pg.Pool({ connectionString: url, max: 2 });
      setupPool.on('error', () => undefined);
      setupPool.on('connect', (client) => client.on('error', () => undefined));
      try {
        if (options?.migrate ?? true) await migrate({ pool: setupPool, lines: SERVICE_LINES });
        await setupPool.query(BENCH_SCHEMA);
      } finally {
        await setupPool.end();
      }
      const database: BenchDatabase = {
        name,
        url,
        setupSeconds: (performance.now() - started) / 1000,
        pool(max, sessionOptions) {
          const options = Object.entries(sessionOptions ?? {})
            .map(([key, value]) => `-c ${key}=${value}`)
            .join(' ');
          const pool = new pg.Pool({
            connectionString: url,
            max,
            application_name: 'postbox-bench',
            ...(options ? { options } : {}),
          });
          // A client dropped at teardown (idle or checked out) must not crash the run.
          pool.on('error', () => undefined);
          pool.on('connect', (client) => client.on('error', () => undefined));
          pools.add(pool);
          return pool;
        },
        async drop() {
          live.delete(database);
          await Promise.all([...pools].map((pool) => pool.end().catch(() => undefined)));
          pools.clear();
          await admin((client) => client.query(`drop database if exists ${name} with (force)`));
        },
      };
      live.add(database);
      return database;
    },
    async describe() {
      return admin(async (client) => {
        const version = await client.query<{ server_version: string }>('show server_version');
        const { rows } = await client.query<{ name: string; setting: string }>(
          'select name, current_setting(name) as setting from pg_settings where name = any($1::text[]) order by name',
          [RECORDED_SETTINGS],
        );
        const settings: Record<string, string> = {};
        for (const row of rows) settings[row.name] = row.setting;
        return { kind, version: version.rows[0]?.server_version ?? 'unknown', settings };
      });
    },
    async stop() {
      for (const database of [...live]) await database.drop().catch(() => undefined);
      await teardown();
    },
  };
}

/** Replaces the database name of a connection string. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
