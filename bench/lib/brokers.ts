import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Where Debian's (or a hand-installed) nats-server is; undefined when none. */
export const NATS_SERVER_BINARY = [
  '/usr/sbin/nats-server',
  '/usr/bin/nats-server',
  '/usr/local/bin/nats-server',
].find((file) => existsSync(file));

/** The RabbitMQ the bench publishes to (the machine's; the bench uses names of its own run). */
export const BENCH_RABBITMQ_URL = 'amqp://guest:guest@127.0.0.1:5672';

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Whether something accepts TCP connections at host:port. */
export function reachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Resolves once a spawned nats-server (stderr piped) logs that it is ready; rejects with its log if it
 * exits first or is not ready within 20 s. Its later output is drained.
 */
export async function waitForNatsReady(child: ChildProcess): Promise<void> {
  let log = '';
  child.stderr?.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nats-server did not start:\n${log}`)), 20_000);
    child.stderr?.on('data', (chunk: string) => {
      log += chunk;
      if (log.includes('Server is ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited (${code}):\n${log}`));
    });
  });
  child.stderr?.removeAllListeners('data');
  child.stderr?.resume();
}

/**
 * A `nats-server -js` of the bench's own, on a free port with its own store directory (as the tests do,
 * so the machine's NATS is never touched). `stop` kills it and removes the store.
 */
export async function startNatsServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (!NATS_SERVER_BINARY) throw new Error('nats-server not found');
  const port = await freePort();
  const store = mkdtempSync(path.join(os.tmpdir(), 'postbox-bench-nats-'));
  const child: ChildProcess = spawn(
    NATS_SERVER_BINARY,
    ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  await waitForNatsReady(child);
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(store, { recursive: true, force: true });
    },
  };
}
