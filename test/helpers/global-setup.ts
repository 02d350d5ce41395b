import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { removeAbandonedCluster, startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { SERVICE_LINES } from '../../src/db/migration-lines.ts';
import { migrate } from '../../src/engine/db/migrate.ts';
import { createPool } from '../../src/engine/db/pool.ts';
import { silentLogger } from '../../src/logger.ts';
import { dockerRuntimeLikely } from './docker.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of a maintenance database on the test server (CREATE DATABASE runs there). */
    adminUrl: string;
    /** Name of the migrated template every test file's database is cloned from. */
    templateDb: string;
    /** Where the server came from: 'env' | 'testcontainers' | 'embedded'. */
    serverKind: string;
  }
}

/**
 * Picks the Postgres server for the whole run: TEST_DATABASE_URL, else a testcontainers Postgres when a
 * Docker runtime is reachable, else an embedded Postgres. Then builds one migrated template database.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const teardown: Array<() => Promise<void>> = [];
  let adminUrl: string;
  let serverKind: string;
  const fromEnv = process.env.TEST_DATABASE_URL;
  if (fromEnv) {
    adminUrl = fromEnv;
    serverKind = 'env';
  } else {
    const container = dockerRuntimeLikely() ? await tryTestcontainers() : undefined;
    if (container) {
      adminUrl = container.url;
      serverKind = 'testcontainers';
      teardown.push(container.stop);
    } else {
      // Servers left by earlier runs that were killed before their teardown.
      for (const entry of await fs.readdir(os.tmpdir())) {
        if (entry.startsWith('postbox-test-'))
          await removeAbandonedCluster(path.join(os.tmpdir(), entry), silentLogger);
      }
      // mkdtemp makes a 0700 directory; the server runs as `postgres` when we are root and must reach it.
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'postbox-test-'));
      await fs.chmod(dir, 0o755);
      const server = await startEmbeddedPostgres({
        dir,
        logger: silentLogger,
        // A throw-away cluster: durability across an OS crash buys nothing here.
        settings: { fsync: 'off', full_page_writes: 'off', max_connections: '500' },
      });
      adminUrl = server.connectionString;
      serverKind = 'embedded';
      teardown.push(async () => {
        await server.stop();
        await fs.rm(dir, { recursive: true, force: true });
      });
    }
  }

  const templateDb = `postbox_template_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${templateDb}`);
  await admin.query(`create database ${templateDb}`);
  await admin.end();
  const pool = createPool({
    connectionString: withDatabase(adminUrl, templateDb),
    logger: silentLogger,
    max: 2,
  });
  await migrate({ pool, lines: SERVICE_LINES });
  await pool.end();

  project.provide('adminUrl', adminUrl);
  project.provide('templateDb', templateDb);
  project.provide('serverKind', serverKind);
  console.log(`postbox tests: ${serverKind} postgres, template ${templateDb}`);

  return async () => {
    if (serverKind === 'env') await dropDatabases(adminUrl, templateDb);
    for (const step of teardown.reverse()) await step();
  };
}

/** Replaces the database name of a connection string. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** On a shared server (TEST_DATABASE_URL) leave nothing behind: the template and every per-file clone. */
async function dropDatabases(adminUrl: string, templateDb: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ datname: string }>(
      `select datname from pg_database where datname like 'postbox_t_${process.pid}_%' or datname = $1`,
      [templateDb],
    );
    for (const row of rows) await admin.query(`drop database if exists "${row.datname}" with (force)`);
  } finally {
    await admin.end();
  }
}

async function tryTestcontainers(): Promise<{ url: string; stop: () => Promise<void> } | undefined> {
  try {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer('postgres:17-alpine')
      .withCommand(['postgres', '-c', 'fsync=off', '-c', 'max_connections=500'])
      .start();
    return {
      url: withDatabase(container.getConnectionUri(), 'postgres'),
      stop: async () => {
        await container.stop();
      },
    };
  } catch (error) {
    console.warn(
      `testcontainers unavailable (${(error as Error).message.split('\n')[0]}); using embedded postgres`,
    );
    return undefined;
  }
}
