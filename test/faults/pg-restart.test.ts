import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.ts';
import { type EmbeddedPostgres, freePort, startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { SERVICE_LINES } from '../../src/db/migration-lines.ts';
import { createDb } from '../../src/engine/db/database.ts';
import { migrate } from '../../src/engine/db/migrate.ts';
import { createPool } from '../../src/engine/db/pool.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { silentLogger } from '../../src/logger.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { waitFor } from '../helpers/wait.ts';

// A server of its own: restarting the shared test server would break the other test files.
let dir: string;
let port: number;
let server: EmbeddedPostgres;
let pool: pg.Pool;
let db: Db;
let postbox: Postbox | undefined;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'postbox-restart-'));
  await fs.chmod(dir, 0o755);
  port = await freePort();
  server = await startEmbeddedPostgres({ dir, port, logger: silentLogger, settings: { fsync: 'off' } });
  pool = createPool({ connectionString: server.connectionString, max: 16, logger: silentLogger });
  db = createDb(pool);
  await migrate({ pool, lines: SERVICE_LINES });
  await createEffectsTable(db as never);
});
afterAll(async () => {
  await postbox?.stop();
  await pool?.end();
  await server?.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('Postgres restarted under load', () => {
  it('reconnects everything; committed events are never lost and are delivered exactly once', async () => {
    postbox = await startPostbox({
      pool,
      connectionString: server.connectionString,
      pollIntervalMs: 200,
      concurrency: 4,
      consumers: [effectsConsumer({ name: 'survivor', partitions: 4 })],
    });
    const committed = new Set<string>();
    const uncertain = new Set<string>(); // the commit's outcome was not reported (connection died)
    let failures = 0;
    let writing = true;
    let n = 0;
    const writer = async (w: number) => {
      while (writing) {
        const event = Ticked.create(`w${w}-${n % 10}`, { n: n++ });
        try {
          await db.transaction().execute((trx) => appendEvents(trx, [event]));
          committed.add(event.id);
        } catch {
          failures++;
          uncertain.add(event.id);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    };
    const writers = Promise.all([1, 2, 3, 4].map(writer));

    await waitFor('load running', async () => committed.size > 200);
    await server.stop();
    await new Promise((resolve) => setTimeout(resolve, 500));
    server = await startEmbeddedPostgres({ dir, port, logger: silentLogger, settings: { fsync: 'off' } });
    const afterRestart = committed.size;
    await waitFor('writes succeed again', async () => committed.size > afterRestart + 200, 30_000);
    writing = false;
    await writers;
    expect(failures).toBeGreaterThan(0); // the restart really hit in-flight work

    // Every acknowledged commit is in the log; the uncertain ones are there or not, never half.
    const { rows: logged } = await sql<{
      id: string;
    }>`select id from outbox.events where type = 'Ticked'`.execute(db);
    const inLog = new Set(logged.map((row) => row.id));
    for (const id of committed) expect(inLog.has(id)).toBe(true);
    for (const id of inLog) expect(committed.has(id) || uncertain.has(id)).toBe(true);

    // Delivery resumed: every logged event handled exactly once.
    const delivered = await waitFor(
      'all delivered',
      async () => {
        const { rows } = await sql<{ total: string; distinct_ids: string }>`
          select count(*)::text as total, count(distinct event_id)::text as distinct_ids
          from test_effects where consumer = 'survivor'`.execute(db);
        return Number(rows[0]?.total) >= inLog.size && rows[0];
      },
      60_000,
    );
    expect(delivered).toEqual({ total: String(inLog.size), distinct_ids: String(inLog.size) });
    await waitFor('relay leads again', async () => postbox?.isLeader() === true);
  }, 120_000);
});
