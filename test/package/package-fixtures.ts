import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (where package.json is). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** What the package is built from: `files` of package.json plus what its build reads. */
const PACKED_SOURCES = [
  'package.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'README.md',
  'SECURITY.md',
  'schema.graphql',
  'src',
  'bin',
  'console',
  'migrations',
  'sql',
];

/** The exact version of a package installed in the repository (what the repo builds and tests with). */
export function repoVersion(name: string): string {
  const manifest: unknown = JSON.parse(
    readFileSync(path.join(repoRoot, 'node_modules', name, 'package.json'), 'utf8'),
  );
  const version =
    manifest && typeof manifest === 'object' && 'version' in manifest ? manifest.version : undefined;
  if (typeof version !== 'string') throw new Error(`no version in node_modules/${name}/package.json`);
  return version;
}

// npm passes its configuration to scripts as npm_config_*; a child npm would obey it (local_prefix would
// even make it install into the repository). Only the connection settings go through.
const KEPT_NPM_CONFIG = new Set(
  ['userconfig', 'cache', 'cafile', 'registry', 'proxy', 'https_proxy', 'noproxy', 'strict_ssl'].map(
    (key) => `npm_config_${key}`,
  ),
);

/**
 * The environment of a child process: the machine's (PATH with the test's Node first, HOME, proxies and CA
 * settings) without what the test run adds (npm script configuration, NODE_OPTIONS, VITEST_*, database URLs).
 */
export function childEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (key.startsWith('npm_') && !KEPT_NPM_CONFIG.has(key.toLowerCase())) continue;
    if (/^(VITEST|TEST_|NODE_OPTIONS$|INIT_CWD$|DATABASE_URL$|PORT$)/.test(key)) continue;
    env[key] = value;
  }
  env.PATH = [path.dirname(process.execPath), env.PATH ?? '/usr/bin:/bin'].join(path.delimiter);
  return { ...env, ...extra };
}

/** What a finished child process left behind. */
export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion (SIGKILL after `timeoutMs`); never rejects on a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 240_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Like {@link run}, but a non-zero exit rejects with the command's output. */
export async function runOrThrow(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<Finished> {
  const finished = await run(command, args, options);
  if (finished.code !== 0) {
    throw new Error(
      `\`${command} ${args.join(' ')}\` in ${options.cwd} exited with ${finished.code ?? finished.signal}:\n` +
        `${finished.stderr.slice(-4000)}\n${finished.stdout.slice(-2000)}`,
    );
  }
  return finished;
}

/**
 * Packs the package the way `npm pack` in the repository would (its prepack builds dist/), but from a copy
 * of the sources: the build starts with `rm -rf dist`, and other test files run bin/postbox.js, which uses
 * dist/ when it exists. Returns the tarball's path.
 */
export async function packProject(work: string): Promise<string> {
  const source = path.join(work, 'source');
  await fs.mkdir(source);
  for (const entry of PACKED_SOURCES) {
    await fs.cp(path.join(repoRoot, entry), path.join(source, entry), { recursive: true });
  }
  await fs.symlink(path.join(repoRoot, 'node_modules'), path.join(source, 'node_modules'), 'dir');
  const { stdout } = await runOrThrow('npm', ['pack', '--json', '--pack-destination', work], { cwd: source });
  // prepack's own output comes first on stdout; npm's JSON report is the last thing printed.
  const report: unknown = JSON.parse(stdout.slice(stdout.lastIndexOf('\n[') + 1));
  const filename =
    Array.isArray(report) && report[0] && typeof report[0] === 'object' && 'filename' in report[0]
      ? report[0].filename
      : undefined;
  if (typeof filename !== 'string') throw new Error(`npm pack printed no filename:\n${stdout}`);
  return path.join(work, filename);
}

/** `npm install` into `dir` (which has a package.json), from the registry; throws with npm's output. */
export async function npmInstall(dir: string, specs: readonly string[]): Promise<void> {
  await runOrThrow('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...specs], {
    cwd: dir,
    timeoutMs: 280_000,
  });
}

/** A long-running child (the example app) whose stdout is JSON lines. */
export class AppProcess {
  readonly child: ChildProcess;
  readonly lines: Array<Record<string, unknown>> = [];
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv) {
    this.child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    let partial = '';
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      partial += chunk;
      const complete = partial.split('\n');
      partial = complete.pop() ?? '';
      for (const line of complete) {
        try {
          const parsed: unknown = JSON.parse(line);
          if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
            this.lines.push(Object.fromEntries(Object.entries(parsed)));
          }
        } catch {
          // not one of the app's JSON lines; kept in `stdout`
        }
      }
    });
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
  }

  /** The first JSON line with this `event`, waiting up to `timeoutMs`; rejects if the process exits first. */
  async line(event: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => {
      exited = true;
    });
    for (;;) {
      const found = this.lines.find((line) => line.event === event);
      if (found) return found;
      if (exited || Date.now() > deadline) {
        throw new Error(
          `the app ${exited ? 'exited' : 'timed out'} before printing "${event}"\n` +
            `stdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Kills the process if it still runs (after a failed test). */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
