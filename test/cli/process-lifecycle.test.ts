import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/embedded.ts';
import {
  childEnv,
  cliEntry,
  isAlive,
  makeTempDir,
  postgresProcessesUsing,
  repoRoot,
  startNode,
  waitUntilGone,
} from '../foundation/processes.ts';

const tempDirs: string[] = [];
const started: number[] = [];

afterAll(async () => {
  for (const pid of started) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  for (const dir of tempDirs) {
    for (const pid of await postgresProcessesUsing(dir)) {
      process.kill(pid, 'SIGINT');
      if (!(await waitUntilGone(pid, 10_000))) process.kill(pid, 'SIGKILL');
    }
    await fs.rm(dir, { recursive: true, force: true });
  }
});

/** Every live descendant of `root` (children, grandchildren …), from /proc. */
async function descendantsOf(root: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited while we looked
    }
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const parent = queue.shift();
    for (const [pid, ppid] of parents) {
      if (ppid === parent) {
        found.push(pid);
        queue.push(pid);
      }
    }
  }
  return found.filter(isAlive);
}

/** Starts `npm start` in a process group of its own and resolves once the service is up. */
async function startNpm(dataDir: string): Promise<{ npmPid: number; pids: number[]; output: () => string }> {
  const port = await freePort();
  const npm = spawn('npm', ['start'], {
    cwd: repoRoot,
    env: childEnv({ POSTBOX_DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'info' }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, like a job in a terminal
  });
  let output = '';
  npm.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  npm.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const npmPid = npm.pid ?? 0;
  started.push(npmPid);
  const deadline = Date.now() + 60_000;
  while (!output.includes('postbox is up')) {
    if (Date.now() > deadline || npm.exitCode !== null)
      throw new Error(`npm start did not come up:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const pids = [npmPid, ...(await descendantsOf(npmPid))];
  started.push(...pids);
  const lock = JSON.parse(await fs.readFile(path.join(dataDir, 'postbox.lock'), 'utf8')) as {
    postgresPid: number;
  };
  pids.push(lock.postgresPid);
  return { npmPid, pids, output: () => output };
}

describe('npm start', () => {
  it('SIGTERM to npm’s own pid (a process manager) stops node and the embedded PostgreSQL within 10 s', async () => {
    const dataDir = await makeTempDir('postbox-sigterm-');
    tempDirs.push(dataDir);
    const { npmPid, pids } = await startNpm(dataDir);

    const signalledAt = Date.now();
    process.kill(npmPid, 'SIGTERM');
    for (const pid of pids) expect(await waitUntilGone(pid, 10_000 - (Date.now() - signalledAt))).toBe(true);
    expect(Date.now() - signalledAt).toBeLessThan(10_000);
    expect(await postgresProcessesUsing(dataDir)).toEqual([]);
  }, 90_000);

  it('Ctrl-C (SIGINT to the process group: npm and node both get it) shuts down in order, not forced', async () => {
    const dataDir = await makeTempDir('postbox-ctrl-c-');
    tempDirs.push(dataDir);
    const { npmPid, pids, output } = await startNpm(dataDir);

    process.kill(-npmPid, 'SIGINT');
    for (const pid of pids) expect(await waitUntilGone(pid, 10_000)).toBe(true);
    expect(output()).not.toContain('second signal');
    expect(output()).toContain('"msg":"stopped"');
    expect(await postgresProcessesUsing(dataDir)).toEqual([]);
  }, 90_000);
});

describe('postbox serve on a port already in use', () => {
  it('says which port and what to set, stops the embedded PostgreSQL, and exits non-zero', async () => {
    const dataDir = await makeTempDir('postbox-eaddrinuse-');
    tempDirs.push(dataDir);
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const serve = startNode(
        [cliEntry, 'serve'],
        childEnv({ POSTBOX_DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'warn' }),
      );
      started.push(serve.child.pid ?? 0);
      const { code } = await serve.exited;
      const output = serve.lines.join('\n');
      expect(code, output).not.toBe(0);
      expect(output).toContain(`127.0.0.1:${port} is already in use`);
      expect(output).toContain('PORT');
      expect(output).not.toMatch(/Unhandled 'error' event/);
      expect(await postgresProcessesUsing(dataDir)).toEqual([]);
    } finally {
      blocker.close();
    }
  }, 90_000);
});
