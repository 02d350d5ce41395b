import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { Ticked, Tocked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { soakOr } from '../helpers/soak.ts';
import { waitFor } from '../helpers/wait.ts';

// Three worker processes on one database: deployment A (c1, c2) and deployment B (c3); then a rolling upgrade
// of A whose c1 also handles Tocked. Meanwhile the engines' connections are terminated and the leading
// process is frozen (SIGSTOP) and resumed. Nothing may be lost or handled twice, every consumer sees each
// stream in order, and every process stops cleanly (its pool drained to idle).

const node = path.resolve('node_modules/.bin/node');
const script = path.resolve('test/fixtures/deployment-process.ts');
/** Events appended before the first fault; writers keep appending (paced) until the last one is over. */
const EVENTS = soakOr(300, 5000);
const PACE_MS = soakOr(5, 1);
const STREAMS = soakOr(12, 48);
const BUDGET_MS = soakOr(180_000, 900_000);

let t: TestDatabase;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 10 });
  await sql`create table deploy_effects (
    seq bigint generated always as identity primary key, consumer text not null, version int not null,
    event_id uuid not null, event_type text not null, stream_id text not null, stream_version int not null)`.execute(
    t.db,
  );
});
afterAll(async () => {
  for (const child of children) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
  await t?.drop();
});

interface Worker {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
}

async function start(role: 'a1' | 'a2' | 'b'): Promise<Worker> {
  const child = spawn(node, [script, t.url, role], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => children.delete(child));
  let output = '';
  child.stdout?.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('ready')) resolve();
    });
    void exited.then((code) => reject(new Error(`${role} exited early (${code})`)));
  });
  return { child, exited };
}

/** Which process leads: the pid of the backend holding the relay's session lock, and its application name. */
async function leaderBackend(): Promise<number | undefined> {
  const { rows } = await sql<{ pid: number }>`
    select l.pid from pg_locks l join pg_stat_activity a on a.pid = l.pid
    where l.locktype = 'advisory' and l.objid = ${0x70627278} and l.granted and a.datname = current_database()`.execute(
    t.db,
  );
  return rows[0]?.pid;
}

/** The OS pid of the worker whose relay connection is backend `backendPid` (via its client port). */
async function workerOfBackend(backendPid: number, workers: Worker[]): Promise<Worker | undefined> {
  const { rows } = await sql<{ port: number }>`
    select client_port as port from pg_stat_activity where pid = ${backendPid}`.execute(t.db);
  const port = rows[0]?.port;
  if (!port) return undefined;
  // Find the local process owning that TCP port (Linux /proc/net/tcp → inode → /proc/<pid>/fd).
  const { readFile, readdir, readlink } = await import('node:fs/promises');
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const tables = [
    await readFile('/proc/net/tcp', 'utf8'),
    await readFile('/proc/net/tcp6', 'utf8').catch(() => ''),
  ];
  const inode = tables
    .join('\n')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .find((cols) => cols[1]?.endsWith(`:${hexPort}`))?.[9];
  if (!inode) return undefined;
  for (const worker of workers) {
    const fds = await readdir(`/proc/${worker.child.pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${worker.child.pid}/fd/${fd}`).catch(() => '');
      if (target === `socket:[${inode}]`) return worker;
    }
  }
  return undefined;
}

async function terminateEngineBackends(): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
    where datname = current_database() and pid <> pg_backend_pid()
      and (application_name like 'postbox%' or state like 'idle in transaction%')`.execute(t.db);
  return rows[0]?.n ?? 0;
}

describe('deployments under faults (soak)', () => {
  it(
    'two deployments, a rolling upgrade, killed connections and a frozen leader: no event lost or doubled',
    async () => {
      const a1 = await start('a1');
      await waitFor('a1 leads', async () => (await leaderBackend()) !== undefined);
      const b = await start('b');
      let appended = 0;
      let tockedFrom = Number.POSITIVE_INFINITY; // Tocked events only after the upgrade registered c1's new definition
      let writing = true;
      const writers = Promise.all(
        [0, 1, 2].map(async (w) => {
          while (writing) {
            const n = appended++;
            const event =
              n >= tockedFrom && n % 3 === 0
                ? Tocked.create(`s${(n + w) % STREAMS}`, { n })
                : Ticked.create(`s${(n + w) % STREAMS}`, { n });
            try {
              await t.db.transaction().execute((trx) => appendEvents(trx, [event]));
            } catch {
              // terminated with the engine's connections: the log says what committed
            }
            await new Promise((resolve) => setTimeout(resolve, PACE_MS));
          }
        }),
      );
      const effectCount = async () =>
        Number(
          (await sql<{ n: string }>`select count(*)::text as n from deploy_effects`.execute(t.db)).rows[0]
            ?.n ?? 0,
        );

      await waitFor('events appended', async () => appended >= EVENTS, BUDGET_MS);
      await waitFor('deliveries under way', async () => (await effectCount()) > EVENTS / 4, BUDGET_MS);
      expect(await terminateEngineBackends()).toBeGreaterThan(0);

      // Rolling upgrade of A: version 2 starts, then version 1 stops cleanly.
      const a2 = await start('a2');
      tockedFrom = appended;
      await new Promise((resolve) => setTimeout(resolve, 500));
      a1.child.kill('SIGTERM');
      expect(await a1.exited).toBe(0);

      // Freeze the leading process for a moment, with connections cut meanwhile, then resume it.
      const leaderPid = await waitFor('a leader', async () => leaderBackend());
      const leader = await workerOfBackend(leaderPid, [a2, b]);
      expect(leader).toBeDefined();
      leader?.child.kill('SIGSTOP');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await terminateEngineBackends();
      leader?.child.kill('SIGCONT');
      await new Promise((resolve) => setTimeout(resolve, 1000));

      writing = false;
      await writers;

      const { rows: log } = await sql<{ ticked: number; tocked: number }>`
      select count(*) filter (where type = 'Ticked')::int as ticked,
             count(*) filter (where type = 'Tocked')::int as tocked from outbox.events`.execute(t.db);
      const ticked = log[0]?.ticked ?? 0;
      const tocked = log[0]?.tocked ?? 0;
      expect(tocked).toBeGreaterThan(0);
      const expected: Record<string, number> = { c1: ticked + tocked, c2: ticked, c3: ticked + tocked };
      for (const [consumer, total] of Object.entries(expected)) {
        await waitFor(
          `${consumer}: ${total} events delivered`,
          async () => {
            const { rows } = await sql<{
              n: number;
            }>`select count(distinct event_id)::int as n from deploy_effects
            where consumer = ${consumer}`.execute(t.db);
            return (rows[0]?.n ?? 0) >= total;
          },
          BUDGET_MS,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 500)); // room for a wrong duplicate

      for (const [consumer, total] of Object.entries(expected)) {
        const { rows } = await sql<{ n: number; d: number }>`
        select count(*)::int as n, count(distinct event_id)::int as d from deploy_effects
        where consumer = ${consumer}`.execute(t.db);
        expect(rows[0], consumer).toEqual({ n: total, d: total });
        // Per stream, in stream order (commit order of effects).
        const { rows: disorder } = await sql`
        select 1 from (select stream_version, lag(stream_version) over (partition by stream_id order by seq) as previous
                       from deploy_effects where consumer = ${consumer}) s
        where previous >= stream_version limit 1`.execute(t.db);
        expect(disorder, `${consumer} stream order`).toEqual([]);
      }
      // No Tocked event reached version 1 of c1.
      const { rows: misrouted } = await sql`select 1 from deploy_effects
      where consumer = 'c1' and version = 1 and event_type = 'Tocked'`.execute(t.db);
      expect(misrouted).toEqual([]);
      // c2's appends committed once per delivered event.
      const { rows: echoes } = await sql<{ n: number; causes: number }>`
      select count(*)::int as n, count(distinct metadata->>'causationId')::int as causes
      from outbox.events where type = 'Echoed'`.execute(t.db);
      expect(echoes[0]).toEqual({ n: ticked, causes: ticked });

      for (const worker of [a2, b]) worker.child.kill('SIGTERM');
      expect(await Promise.all([a2.exited, b.exited])).toEqual([0, 0]);
    },
    BUDGET_MS + 120_000,
  );
});
