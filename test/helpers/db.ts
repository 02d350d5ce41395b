import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { Db } from '../../src/db/database.ts';
import { createDb } from '../../src/engine/db/database.ts';
import { createPool } from '../../src/engine/db/pool.ts';
import { silentLogger } from '../../src/logger.ts';
import { withDatabase } from './global-setup.ts';

/** A database of its own for one test file (or one test), cloned from the migrated template. */
export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  readonly pool: pg.Pool;
  readonly db: Db;
  /** Closes the pool and drops the database. */
  drop(): Promise<void>;
}

/** Creates a fresh, fully migrated database (a clone of the template: milliseconds, not a migration run). */
export async function createTestDatabase(
  options: { poolSize?: number; migrated?: boolean } = {},
): Promise<TestDatabase> {
  const adminUrl = inject('adminUrl');
  const name = `postbox_t_${inject('templateDb').split('_').at(-1)}_${randomBytes(5).toString('hex')}`;
  await withAdmin(async (admin) => {
    const template = options.migrated === false ? 'template0' : inject('templateDb');
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`create database ${name} template ${template}`);
        return;
      } catch (error) {
        // Two clones of one template at the same instant can collide ("being accessed by other users").
        if (attempt < 20 && (error as { code?: string }).code === '55006') {
          await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200));
          continue;
        }
        throw error;
      }
    }
  });
  const url = withDatabase(adminUrl, name);
  const pool = createPool({ connectionString: url, logger: silentLogger, max: options.poolSize ?? 10 });
  const db: Db = createDb(pool);
  return {
    name,
    url,
    pool,
    db,
    async drop() {
      await pool.end();
      await withAdmin((admin) => admin.query(`drop database if exists ${name} with (force)`));
    },
  };
}

/** Runs `fn` with a client on the server's maintenance database. */
export async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('adminUrl') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
