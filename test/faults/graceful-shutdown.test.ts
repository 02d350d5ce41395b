import { spawn } from 'node:child_process';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { createEffectsTable, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

const node = path.resolve('node_modules/.bin/node');
const workerScript = path.resolve('test/fixtures/worker-process.ts');

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
  await createEffectsTable(t.db as never);
});
afterAll(() => t?.drop());

describe('graceful shutdown', () => {
  it('SIGTERM lets in-flight deliveries finish and commit, then exits 0', async () => {
    const events = Array.from({ length: 40 }, (_, n) => Ticked.create(`g${n % 4}`, { n }));
    await t.db.transaction().execute((trx) => appendEvents(trx, events));
    // Every c1 handler call takes 100 ms: a batch (up to 50 events of one partition) is in flight for seconds.
    const child = spawn(node, [workerScript, t.url], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, POSTBOX_TEST_SLOW_MS: '100' },
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => {
      child.stdout?.setEncoding('utf8');
      child.stdout?.on('data', (chunk: string) => {
        if (chunk.includes('ready')) resolve();
      });
    });
    // Its first c1 batch is now in flight: up to 10 events of one partition at 100 ms each.
    await new Promise((resolve) => setTimeout(resolve, 250));
    const before = await checkpointHandled(t, 'c1');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // What was in flight when the signal came was finished and committed, not abandoned.
    const after = await checkpointHandled(t, 'c1');
    const { rows } = await sql<{
      n: string;
    }>`select count(*)::text as n from test_effects where consumer = 'c1'`.execute(t.db);
    expect(after).toBeGreaterThan(before);
    expect(Number(rows[0]?.n)).toBe(after);
    // No delivery transaction was left open or rolled back by the exit.
    const { rows: open } = await sql`select 1 from pg_stat_activity
      where datname = current_database() and state like 'idle in transaction%'`.execute(t.db);
    expect(open).toEqual([]);
  });
});

async function checkpointHandled(t: TestDatabase, consumer: string): Promise<number> {
  const { rows } = await sql<{ n: string }>`select coalesce(sum(handled), 0)::text as n
    from outbox.consumer_partitions where consumer = ${consumer}`.execute(t.db);
  return Number(rows[0]?.n);
}
