import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { createEffectsTable, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { soakOr } from '../helpers/soak.ts';
import { waitFor } from '../helpers/wait.ts';

const node = path.resolve('node_modules/.bin/node');
const workerScript = path.resolve('test/fixtures/worker-process.ts');
const WRITERS = 8;
// By default 8 × 300: every writer still overlaps the kill and the restart (the kill waits for a fifth of
// the deliveries), in about a tenth of the deep run's time. POSTBOX_SOAK=1 runs 8 × 2000 on 64 streams.
const EVENTS_PER_WRITER = soakOr(300, 2000);
const STREAMS = soakOr(16, 64); // shared by all writers: appends contend on stream locks
const TOTAL = WRITERS * EVENTS_PER_WRITER;
/** Time to deliver everything after the writers finish, and the test's whole budget, ms. */
const DELIVERY_BUDGET_MS = soakOr(120_000, 300_000);
const TEST_BUDGET_MS = soakOr(240_000, 600_000);

let t: TestDatabase;
const workers = new Set<ChildProcess>();

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 12 });
  await createEffectsTable(t.db as never);
});
afterAll(async () => {
  for (const worker of workers) worker.kill('SIGKILL');
  await t?.drop();
});

async function startWorker(): Promise<ChildProcess> {
  const child = spawn(node, [workerScript, t.url], { stdio: ['ignore', 'pipe', 'inherit'] });
  workers.add(child);
  child.once('exit', () => workers.delete(child));
  let output = '';
  child.stdout?.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker exited early (${code})`)));
  });
  return child;
}

/** One writer: EVENTS_PER_WRITER events in transactions of 1–4 events, on random shared streams. */
async function writer(seed: number): Promise<void> {
  let random = seed;
  const next = () => {
    random = (random * 1103515245 + 12345) % 2 ** 31;
    return random;
  };
  let written = 0;
  while (written < EVENTS_PER_WRITER) {
    const size = Math.min(1 + (next() % 4), EVENTS_PER_WRITER - written);
    const events = Array.from({ length: size }, (_, i) =>
      Ticked.create(`s${next() % STREAMS}`, { n: seed * 100_000 + written + i }),
    );
    await t.db.transaction().execute(async (trx) => {
      await sql`select 1`.execute(trx); // a business statement first
      await appendEvents(trx, events);
    });
    written += size;
  }
}

const effectCount = async (consumer: string) =>
  Number(
    (
      await sql<{
        n: string;
      }>`select count(*)::text as n from test_effects where consumer = ${consumer}`.execute(t.db)
    ).rows[0]?.n,
  );

describe('crash safety', () => {
  it(
    `8 writers × ${EVENTS_PER_WRITER} events, two worker processes, one SIGKILLed mid-run and restarted: every event once, in stream order`,
    async () => {
      const first = await startWorker();
      await startWorker();
      const writing = Promise.all(Array.from({ length: WRITERS }, (_, i) => writer(i + 1)));

      // Kill one worker while deliveries are in flight, then start a replacement.
      await waitFor('deliveries in flight', async () => (await effectCount('c1')) > TOTAL / 5, 60_000);
      first.kill('SIGKILL');
      await once(first, 'exit');
      await startWorker();
      await writing;

      for (const consumer of ['c1', 'c2']) {
        await waitFor(
          `${consumer} to see every event`,
          async () => {
            const seen = await effectCount(consumer);
            if (seen < TOTAL) throw new Error(`${consumer} has handled ${seen} of ${TOTAL}`);
            return true;
          },
          DELIVERY_BUDGET_MS,
        );
      }
      // Let a wrong implementation deliver duplicates, if it would.
      await new Promise((resolve) => setTimeout(resolve, 500));

      for (const consumer of ['c1', 'c2']) {
        const { rows } = await sql<{ total: string; distinct_events: string; max_per_event: string }>`
        select coalesce(sum(n), 0)::text as total, count(*)::text as distinct_events,
               coalesce(max(n), 0)::text as max_per_event
        from (select event_id, count(*) as n from test_effects where consumer = ${consumer} group by event_id) e`.execute(
          t.db,
        );
        expect(rows[0]).toEqual({ total: String(TOTAL), distinct_events: String(TOTAL), max_per_event: '1' });

        // Per stream, the handler saw versions 1, 2, 3… in order (effects are numbered in commit order).
        const { rows: disorder } = await sql<{ stream_id: string }>`
        select stream_id from (
          select stream_id, stream_version,
                 row_number() over (partition by stream_id order by seq) as nth
          from test_effects where consumer = ${consumer}) s
        where stream_version <> nth limit 5`.execute(t.db);
        expect(disorder).toEqual([]);
      }

      // Events appended by c2's handler committed exactly once per delivered event.
      const { rows: echoes } = await sql<{ n: string; causes: string }>`
      select count(*)::text as n, count(distinct metadata->>'causationId')::text as causes
      from outbox.events where type = 'Echoed'`.execute(t.db);
      expect(echoes[0]).toEqual({ n: String(TOTAL), causes: String(TOTAL) });

      const { rows: versions } = await sql<{ bad: string }>`
      select count(*)::text as bad from (
        select stream_id, max(stream_version) as v, count(*) as n from outbox.events
        where stream_type = 'counter' group by stream_id) s where v <> n`.execute(t.db);
      expect(versions[0]?.bad).toBe('0');
    },
    TEST_BUDGET_MS,
  );
});
