import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (where package.json is). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** The Node 24 the project pins (the machine's own node may be older and cannot run the sources). */
export const nodeBin = path.join(repoRoot, 'node_modules', '.bin', 'node');

/** The CLI entry point, run as `node src/cli/main.ts …` like `npm run postbox` does. */
export const cliEntry = path.join(repoRoot, 'src', 'cli', 'main.ts');

/**
 * A minimal environment for child processes: nothing from the test run leaks in (no DATABASE_URL, no
 * TEST_DATABASE_URL, no VITEST_* variables), so each test states exactly what the child sees.
 */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? os.tmpdir(),
    NODE_ENV: 'production',
    ...extra,
  };
}

/** What a finished child process left behind. */
export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node <args>` in the repository root to completion (killed after `timeoutMs`). */
export function runNode(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 60_000,
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(nodeBin, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A long-running child whose output is collected line by line. */
export interface RunningNode {
  readonly child: ChildProcess;
  /** Every complete line written so far, stdout and stderr interleaved. */
  readonly lines: string[];
  /** Resolves with the first line (already seen or still to come) matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when the child has exited (and its output is fully read). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns `node <args>` in the repository root and keeps it running. */
export function startNode(args: readonly string[], env: NodeJS.ProcessEnv): RunningNode {
  const child = spawn(nodeBin, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  const collect = (stream: NodeJS.ReadableStream) => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        for (const waiter of waiters) {
          if (waiter.pattern.test(line)) {
            waiters.delete(waiter);
            waiter.resolve(line);
          }
        }
      }
    });
  };
  if (child.stdout) collect(child.stdout);
  if (child.stderr) collect(child.stderr);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    lines,
    exited,
    waitForLine(pattern, timeoutMs = 60_000) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(`no line matching ${pattern} within ${timeoutMs} ms; output:\n${lines.join('\n')}`),
          );
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then(({ code, signal }) => {
          if (!waiters.has(waiter)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          reject(
            new Error(
              `exited (${code ?? signal}) before a line matched ${pattern}; output:\n${lines.join('\n')}`,
            ),
          );
        });
      });
    },
  };
}

/** Alive and not a zombie (a killed process whose parent has not reaped it yet is as good as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false; // vanished between the two checks
  }
}

/** Polls until `pid` is gone; false if it is still alive after `timeoutMs`. */
export async function waitUntilGone(pid: number, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/**
 * Live (non-zombie) postmasters whose command line mentions `dir`. A backend forked a moment ago still shows
 * its postmaster's command line until it renames itself, so processes whose parent also matches are left out.
 */
export async function postgresProcessesUsing(dir: string): Promise<number[]> {
  const matches = new Map<number, number>(); // pid → parent pid
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const comm = (await fs.readFile(`/proc/${pid}/comm`, 'utf8')).trim();
      if (comm !== 'postgres') continue;
      const cmdline = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      if (!cmdline.some((arg) => arg.startsWith(dir)) || !isAlive(pid)) continue;
      const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      matches.set(pid, ppid);
    } catch {
      // the process exited while we looked
    }
  }
  return [...matches].filter(([, ppid]) => !matches.has(ppid)).map(([pid]) => pid);
}

/**
 * A fresh temporary directory the `postgres` OS user can reach: mkdtemp creates it 0700, and the embedded
 * server runs as `postgres` when the tests run as root.
 */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  await fs.chmod(dir, 0o755);
  return dir;
}
