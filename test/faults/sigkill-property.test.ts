import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { createEffectsTable, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { soakOr } from '../helpers/soak.ts';
import { waitFor } from '../helpers/wait.ts';

const node = path.resolve('node_modules/.bin/node');
const workerScript = path.resolve('test/fixtures/worker-process.ts');
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

function startWorker(
  url: string,
  crashAt?: number,
): { child: ChildProcess; ready: Promise<void>; exited: Promise<void> } {
  const args = [workerScript, url, ...(crashAt === undefined ? [] : [String(crashAt)])];
  const child = spawn(node, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  exited.then(() => children.delete(child));
  child.stdout?.setEncoding('utf8');
  const ready = new Promise<void>((resolve) => {
    child.stdout?.on('data', (chunk: string) => {
      if (chunk.includes('ready')) resolve();
    });
  });
  return { child, ready, exited };
}

/** Checks the invariants for consumer c1 and c2 over `total` events. */
async function checkInvariants(t: TestDatabase, total: number): Promise<void> {
  for (const consumer of ['c1', 'c2']) {
    const { rows } = await sql<{ total: string; distinct_ids: string }>`
      select count(*)::text as total, count(distinct event_id)::text as distinct_ids
      from test_effects where consumer = ${consumer}`.execute(t.db);
    expect(rows[0], consumer).toEqual({ total: String(total), distinct_ids: String(total) });
    const { rows: disorder } = await sql`
      select 1 from (select stream_version, row_number() over (partition by stream_id order by seq) as nth
                     from test_effects where consumer = ${consumer}) s
      where stream_version <> nth limit 1`.execute(t.db);
    expect(disorder, `${consumer} stream order`).toEqual([]);
  }
}

/** Runs of the property: 5 by default (each ~5–15 s), 30 under POSTBOX_SOAK=1; POSTBOX_PROPERTY_RUNS wins. */
const RUNS = Number(process.env.POSTBOX_PROPERTY_RUNS ?? soakOr(5, 30));

describe('worker SIGKILL at random points (property)', () => {
  it(
    'exactly-once effects and per-stream order hold wherever the worker dies',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.record({
            // Either die at a random moment, or from inside a handler after its write and before its commit.
            killAfterMs: fc.integer({ min: 20, max: 1200 }),
            crashInsideHandlerAt: fc.option(fc.integer({ min: 0, max: 399 }), { nil: undefined }),
            streams: fc.integer({ min: 1, max: 12 }),
            seed: fc.integer({ min: 1, max: 1_000_000 }),
          }),
          async ({ killAfterMs, crashInsideHandlerAt, streams, seed }) => {
            const t = await createTestDatabase({ poolSize: 6 });
            try {
              await createEffectsTable(t.db as never);
              const total = 400;
              let random = seed;
              for (let n = 0; n < total; n += 4) {
                const events = [0, 1, 2, 3].map((i) => {
                  random = (random * 1103515245 + 12345) % 2 ** 31;
                  return Ticked.create(`s${random % streams}`, { n: n + i });
                });
                await t.db.transaction().execute((trx) => appendEvents(trx, events));
              }
              const first = startWorker(t.url, crashInsideHandlerAt);
              // With a backlog waiting, the handler may kill its process before it even reports ready.
              await Promise.race([first.ready, first.exited]);
              if (crashInsideHandlerAt === undefined) {
                await new Promise((resolve) => setTimeout(resolve, killAfterMs));
                first.child.kill('SIGKILL');
              }
              await first.exited; // killed by us, or by its own handler
              const second = startWorker(t.url);
              await second.ready;
              await waitFor(
                'all delivered after restart',
                async () => {
                  const { rows } = await sql<{
                    n: string;
                  }>`select count(distinct (consumer, event_id))::text as n
                from test_effects`.execute(t.db);
                  return Number(rows[0]?.n) >= 2 * total;
                },
                60_000,
              );
              await new Promise((resolve) => setTimeout(resolve, 200)); // room for a wrong duplicate
              await checkInvariants(t, total);
              second.child.kill('SIGTERM');
              await second.exited;
            } finally {
              await t.drop();
            }
          },
        ),
        { numRuns: RUNS, endOnFailure: true },
      );
    },
    RUNS * 40_000,
  );
});
