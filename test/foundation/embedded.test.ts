import { promises as fs } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { type Logger, silentLogger } from '../../src/logger.ts';
import {
  childEnv,
  cliEntry,
  isAlive,
  makeTempDir,
  postgresProcessesUsing,
  type RunningNode,
  repoRoot,
  startNode,
  waitUntilGone,
} from './processes.ts';

const holderScript = path.join(repoRoot, 'test', 'fixtures', 'hold-embedded-postgres.ts');

// Everything this file starts, so that a failing test still leaves no process or directory behind.
const tempDirs: string[] = [];
const children: RunningNode[] = [];

afterAll(async () => {
  for (const running of children) {
    if (running.child.exitCode === null && running.child.signalCode === null) running.child.kill('SIGKILL');
  }
  for (const dir of tempDirs) {
    for (const pid of await postgresProcessesUsing(dir)) {
      process.kill(pid, 'SIGINT'); // fast shutdown of a server a failed test left behind
      if (!(await waitUntilGone(pid, 10_000))) process.kill(pid, 'SIGKILL');
    }
    await fs.rm(dir, { recursive: true, force: true });
  }
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  tempDirs.push(dir);
  return dir;
}

/** A logger that keeps every line it is given, for assertions on what the user would see. */
function recordingLogger(): { logger: Logger; messages: () => string[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  return { logger, messages: () => lines.map((line) => String(JSON.parse(line).msg ?? '')) };
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('startEmbeddedPostgres', () => {
  it('starts a server that answers queries, stops it, and keeps the data for the next start', async () => {
    const dir = await tempDir('postbox-embedded-');
    const port = await freePort();
    const first = recordingLogger();

    const server = await startEmbeddedPostgres({ dir, port, logger: first.logger });

    expect(first.messages()).toContain('initialised a new embedded postgres cluster');
    expect(server.port).toBe(port);
    expect(server.pgData).toBe(path.join(dir, 'pg'));
    expect(server.connectionString).toContain(`@127.0.0.1:${port}/postgres`);
    expect(isAlive(server.pid)).toBe(true);
    const [row] = await query<{ version: string; user: string }>(
      server.connectionString,
      'select version(), current_user as user',
    );
    expect(row?.version).toMatch(/^PostgreSQL \d+/);
    expect(row?.user).toBe('postgres');
    await query(
      server.connectionString,
      `create table kept (note text); insert into kept values ('survives');`,
    );
    // The cluster uses password authentication: the generated password is needed.
    const wrong = new URL(server.connectionString);
    wrong.password = 'wrong';
    await expect(query(wrong.toString(), 'select 1')).rejects.toMatchObject({ code: '28P01' });
    const lock = JSON.parse(await fs.readFile(path.join(dir, 'postbox.lock'), 'utf8'));
    expect(lock).toMatchObject({ nodePid: process.pid, postgresPid: server.pid, port });

    await server.stop();

    expect(isAlive(server.pid)).toBe(false);
    expect(await postgresProcessesUsing(dir)).toEqual([]);
    await expect(fs.access(path.join(dir, 'postbox.lock'))).rejects.toThrow();
    await server.stop(); // idempotent

    const second = recordingLogger();
    const again = await startEmbeddedPostgres({ dir, logger: second.logger });
    try {
      expect(second.messages()).not.toContain('initialised a new embedded postgres cluster');
      expect(again.pid).not.toBe(server.pid);
      const kept = await query<{ note: string }>(again.connectionString, 'select note from kept');
      expect(kept).toEqual([{ note: 'survives' }]);
    } finally {
      await again.stop();
    }
    expect(isAlive(again.pid)).toBe(false);
  });

  it('refuses a directory held by a live process, and cleans up the server a killed process left behind', async () => {
    const dir = await tempDir('postbox-orphan-');
    const holder = startNode([holderScript, dir], childEnv());
    children.push(holder);
    const held = JSON.parse(await holder.waitForLine(/^\{/)) as {
      nodePid: number;
      postgresPid: number;
      port: number;
      connectionString: string;
    };
    expect(held.nodePid).toBe(holder.child.pid);
    await query(
      held.connectionString,
      `create table kept (note text); insert into kept values ('survives');`,
    );

    // While its owner lives, the directory is refused and the owner's server is left alone.
    await expect(startEmbeddedPostgres({ dir, logger: recordingLogger().logger })).rejects.toThrow(
      `in use by process ${held.nodePid}`,
    );
    expect(isAlive(held.postgresPid)).toBe(true);
    expect(await query(held.connectionString, 'select 1 as one')).toEqual([{ one: 1 }]);

    // kill -9 of Node: Postgres runs on as an orphan, holding the port and postmaster.pid.
    holder.child.kill('SIGKILL');
    expect((await holder.exited).signal).toBe('SIGKILL');
    expect(isAlive(held.postgresPid)).toBe(true);
    expect(await postgresProcessesUsing(dir)).toEqual([held.postgresPid]);
    expect(await query(held.connectionString, 'select count(*)::int as n from kept')).toEqual([{ n: 1 }]);

    const recorder = recordingLogger();
    const server = await startEmbeddedPostgres({ dir, logger: recorder.logger });
    try {
      expect(recorder.messages()).toContain('stopping an embedded postgres orphaned by a previous process');
      expect(isAlive(held.postgresPid)).toBe(false);
      expect(server.pid).not.toBe(held.postgresPid);
      expect(await postgresProcessesUsing(dir)).toEqual([server.pid]);
      const kept = await query<{ note: string }>(server.connectionString, 'select note from kept');
      expect(kept).toEqual([{ note: 'survives' }]);
    } finally {
      await server.stop();
    }
    expect(await postgresProcessesUsing(dir)).toEqual([]);
  });
});

describe('startEmbeddedPostgres on a contested directory', () => {
  it('refuses a second start in the same process instead of killing its own running server', async () => {
    const dir = await tempDir('postbox-twice-');
    const first = await startEmbeddedPostgres({ dir, logger: silentLogger });
    try {
      await expect(startEmbeddedPostgres({ dir, logger: silentLogger })).rejects.toThrow(
        /already running in this process/,
      );
      expect(isAlive(first.pid)).toBe(true);
      expect(await query<{ one: number }>(first.connectionString, 'select 1 as one')).toEqual([{ one: 1 }]);
    } finally {
      await first.stop();
    }
    // Stopped: the directory can be started again (the pg-restart fault test relies on this).
    const again = await startEmbeddedPostgres({ dir, logger: silentLogger });
    await again.stop();
  });

  it('two processes starting on one fresh directory: one wins, the other gets a clear refusal', async () => {
    const dir = await tempDir('postbox-race-');
    const fixture = path.join(repoRoot, 'test', 'fixtures', 'hold-embedded-postgres.ts');
    const racers = [startNode([fixture, dir], childEnv()), startNode([fixture, dir], childEnv())];
    const outcomes = await Promise.all(
      racers.map((racer) =>
        Promise.race([
          racer.waitForLine(/"postgresPid"/).then(() => 'won' as const),
          racer.exited.then(() => 'lost' as const),
        ]),
      ),
    );
    expect([...outcomes].sort()).toEqual(['lost', 'won']);
    const loser = racers[outcomes.indexOf('lost')];
    expect(loser?.lines.join('\n')).toMatch(/in use by process \d+/);
    const winner = racers[outcomes.indexOf('won')];
    const info = JSON.parse(winner?.lines.find((line) => line.includes('postgresPid')) ?? '{}') as {
      connectionString: string;
    };
    expect(await query<{ one: number }>(info.connectionString, 'select 1 as one')).toEqual([{ one: 1 }]);
    winner?.child.kill('SIGTERM');
    await winner?.exited;
  });

  it("keeps the process's exit code (the package's exit hooks must not force 0)", async () => {
    const dir = await tempDir('postbox-exitcode-');
    const running = startNode([holderScript, dir, '--stop-and-exit-with', '3'], childEnv());
    children.push(running);
    const exit = await running.exited;
    expect(exit).toMatchObject({ code: 3 });
  });

  it('redoes a cluster whose initdb never finished instead of failing forever', async () => {
    const dir = await tempDir('postbox-halfmade-');
    // What a kill during initdb leaves: a data directory without Postbox's "initialised" marker.
    await fs.mkdir(path.join(dir, 'pg'), { recursive: true });
    await fs.writeFile(path.join(dir, 'pg', 'PG_VERSION'), '18\n');
    const server = await startEmbeddedPostgres({ dir, logger: silentLogger });
    try {
      expect(await query<{ one: number }>(server.connectionString, 'select 1 as one')).toEqual([{ one: 1 }]);
    } finally {
      await server.stop();
    }
  });
});

describe('postbox serve with the embedded Postgres', () => {
  /** Starts `postbox serve` on `dataDir`, waits until it is up, signals it to stop; returns its log lines. */
  async function serveOnce(dataDir: string, signal: NodeJS.Signals): Promise<string[]> {
    const service = startNode(
      [cliEntry, 'serve'],
      childEnv({ POSTBOX_DATA_DIR: dataDir, POSTBOX_API: 'off', LOG_LEVEL: 'info' }),
    );
    children.push(service);
    await service.waitForLine(/postbox is up/, 90_000);
    expect(await postgresProcessesUsing(dataDir)).toHaveLength(1);

    service.child.kill(signal);
    const exit = await service.exited;

    expect(exit).toEqual({ code: 0, signal: null });
    expect(service.lines.some((line) => line.includes('"msg":"stopped"'))).toBe(true);
    expect(await postgresProcessesUsing(dataDir)).toEqual([]);
    await expect(fs.access(path.join(dataDir, 'postbox.lock'))).rejects.toThrow();
    return service.lines;
  }

  it('initialises a cluster, migrates, shuts down cleanly on SIGINT or SIGTERM, and reuses the data on the next start', async () => {
    const dataDir = await tempDir('postbox-serve-');

    const first = await serveOnce(dataDir, 'SIGINT');
    expect(first.some((line) => line.includes('initialised a new embedded postgres cluster'))).toBe(true);
    expect(first.some((line) => line.includes('"migration":"outbox/000001_event_log.sql"'))).toBe(true);

    // SIGTERM is what `docker compose stop` and process managers send.
    const second = await serveOnce(dataDir, 'SIGTERM');
    expect(second.some((line) => line.includes('initialised a new embedded postgres cluster'))).toBe(false);
    expect(second.some((line) => line.includes('applied migration'))).toBe(false);
  });
});
