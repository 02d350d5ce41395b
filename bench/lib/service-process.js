import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const CLI = path.resolve(import.meta.dirname, '../../src/cli/main.ts');
/** Picks a free TCP port on 127.0.0.1 (listen on 0, read the port, close). */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('could not pick a free port');
  return address.port;
}
/** Reads `VmRSS` and `VmHWM` of a process (Linux); `undefined` elsewhere or once it has exited. */
export function readProcessMemory(pid) {
  let status;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (field) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  };
  const rssBytes = kib('VmRSS');
  const peakRssBytes = kib('VmHWM');
  return rssBytes === undefined || peakRssBytes === undefined ? undefined : { rssBytes, peakRssBytes };
}
/**
 * CPU seconds (user + system) a process has used (Linux `/proc/<pid>/stat`); `undefined` elsewhere. Assumes
 * the usual 100 clock ticks per second (`getconf CLK_TCK`), which Node cannot read.
 */
export function readProcessCpuSeconds(pid) {
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may contain spaces, inside parentheses): state is field 3,
  // utime 14 and stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks / 100 : undefined;
}
/**
 * Starts `postbox serve` as a separate Node process on the scenario database and waits until `/readyz`
 * answers 200. A separate process keeps the bench's clients (hundreds of them in the subscription
 * scenario) off the service's event loop, as they would be in production, and makes the service's memory
 * readable on its own.
 *
 * The service runs with authentication off, a rate limit no bench reaches, JSON logs at warn level and
 * production mode; every other setting is Postbox's default (pool 20, worker concurrency 8, relay poll
 * 2000 ms). `POSTBOX_*` variables of the caller's shell are not passed on, so the figures are those of the
 * defaults whatever shell the bench runs from.
 *
 * The caller must {@link ServiceProcess.stop} it in a `finally`; should the bench die first, an `exit`
 * handler kills it, so it never outlives the bench.
 */
export async function startServiceProcess(options) {
  const started = performance.now();
  const port = await freePort();
  const settings = {
    HOST: '127.0.0.1',
    PORT: String(port),
    POSTBOX_AUTH: 'off',
    POSTBOX_RATE_LIMIT_PER_MINUTE: '1000000',
    LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
    ...options.env,
  };
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !name.startsWith('POSTBOX_') && !['DATABASE_URL', 'PAYMENT_LIMIT_CENTS'].includes(name),
    ),
  );
  // process.execPath: the Node that runs the bench (24, through npm), which runs the TypeScript sources.
  const child = spawn(process.execPath, [CLI, 'serve', ...(options.workers ? [] : ['--no-workers'])], {
    env: { ...inherited, ...settings, DATABASE_URL: options.databaseUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the service process');
  const killOnExit = () => {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', killOnExit);
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      process.off('exit', killOnExit);
      resolve({ code, signal });
    });
  });
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });
  const log = collectLog(child);
  const graphqlUrl = `http://127.0.0.1:${port}/graphql`;
  let stopping;
  let startMs = 0;
  const service = {
    pid,
    graphqlUrl,
    websocketUrl: `ws://127.0.0.1:${port}/graphql`,
    settings,
    get startMs() {
      return startMs;
    },
    memory: () => (hasExited ? undefined : readProcessMemory(pid)),
    cpuSeconds: () => (hasExited ? undefined : readProcessCpuSeconds(pid)),
    logSummary: () => log.summary(),
    stop(graceMs = 15_000) {
      stopping ??= (async () => {
        const started = performance.now();
        let killed = false;
        if (!hasExited) {
          child.kill('SIGTERM');
          const timer = sleep(graceMs, 'timeout');
          if ((await Promise.race([exited, timer])) === 'timeout') {
            killed = true;
            child.kill('SIGKILL');
          }
        }
        const { code, signal } = await exited;
        return { code, signal, killed, stopMs: performance.now() - started };
      })();
      return stopping;
    },
  };
  const deadline = performance.now() + (options.readyTimeoutMs ?? 30_000);
  try {
    for (;;) {
      if (hasExited) {
        const { code, signal } = await exited;
        throw new Error(`the service exited before it was ready (${signal ?? `code ${code}`})`);
      }
      if (await answersReady(port)) break;
      if (performance.now() > deadline) throw new Error('the service was not ready in time');
      await sleep(100);
    }
  } catch (error) {
    await service.stop(5000);
    const tail = log.tail().slice(-5).join('\n  ');
    throw new Error(`${error.message}${tail ? `; its last output:\n  ${tail}` : ''}`);
  }
  startMs = performance.now() - started;
  return service;
}
async function answersReady(port) {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
    await response.body?.cancel();
    return response.status === 200;
  } catch {
    return false; // not listening yet
  }
}
/**
 * Reads the child's stdout and stderr (a pipe nobody reads would stall it once full), counting pino levels
 * and keeping the lines that matter.
 */
function collectLog(child) {
  let warnings = 0;
  let errors = 0;
  const errorLines = [];
  const recent = [];
  const onLine = (line) => {
    if (!line.trim()) return;
    recent.push(line);
    if (recent.length > 50) recent.shift();
    let level;
    try {
      level = JSON.parse(line).level;
    } catch {
      // Not pino's JSON: a crash trace or a warning of Node's own; keep it with the errors.
    }
    if (level !== undefined && level < 50) {
      if (level >= 40) warnings++;
      return;
    }
    errors++;
    if (errorLines.length < 20) errorLines.push(line.slice(0, 2000));
  };
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    });
    stream.on('end', () => {
      if (partial) onLine(partial);
      partial = '';
    });
  }
  return {
    summary: () => ({ warnings, errors, errorLines: [...errorLines] }),
    tail: () => [...recent],
  };
}
//# sourceMappingURL=service-process.js.map
