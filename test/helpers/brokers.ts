import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, reachable, waitForNatsReady } from '../../bench/lib/brokers.ts';

/**
 * Broker tests run against real brokers: their own `nats-server` (started here, on free ports, with its own
 * store) and the RabbitMQ at `RABBITMQ_URL` (default amqp://guest:guest@127.0.0.1:5672). When one is
 * missing a test fails saying so, unless `POSTBOX_SKIP_BROKER_TESTS=1`, which skips it (visibly).
 */
export const SKIP_BROKER_TESTS = process.env.POSTBOX_SKIP_BROKER_TESTS === '1';

/** Where the nats-server binary is (Debian's package puts it in /usr/sbin). */
export const NATS_SERVER_BINARY =
  process.env.NATS_SERVER_BIN ??
  ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((file) =>
    existsSync(file),
  );

/** The RabbitMQ the tests use. */
export const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

// One implementation of the port helpers for the tests and the bench's broker scenario.
export { freePort, reachable };

/** A `nats-server -js` of the test's own: its port, store and process, stoppable and restartable. */
export class NatsServer {
  readonly port: number;
  readonly monitorPort: number;
  readonly storeDir: string;
  readonly #auth: { user: string; pass: string } | undefined;
  #process: ChildProcess | undefined;

  private constructor(port: number, monitorPort: number, auth?: { user: string; pass: string }) {
    this.port = port;
    this.monitorPort = monitorPort;
    this.storeDir = mkdtempSync(path.join(os.tmpdir(), 'postbox-nats-'));
    this.#auth = auth;
  }

  /** Starts one on free ports; throws (clearly) when the binary is missing. */
  static async start(auth?: { user: string; pass: string }): Promise<NatsServer> {
    if (!NATS_SERVER_BINARY)
      throw new Error(
        'nats-server not found (apt-get install nats-server, or NATS_SERVER_BIN); POSTBOX_SKIP_BROKER_TESTS=1 skips these tests',
      );
    const server = new NatsServer(await freePort(), await freePort(), auth);
    await server.restart();
    return server;
  }

  /** `nats://127.0.0.1:<port>`, with the credentials when it has some. */
  get url(): string {
    const auth = this.#auth ? `${this.#auth.user}:${this.#auth.pass}@` : '';
    return `nats://${auth}127.0.0.1:${this.port}`;
  }

  /** Starts the server again on the same port and store (JetStream recovers its streams from it). */
  async restart(): Promise<void> {
    const args = ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-m', String(this.monitorPort)];
    args.push('-sd', this.storeDir);
    if (this.#auth) args.push('--user', this.#auth.user, '--pass', this.#auth.pass);
    const child = spawn(NATS_SERVER_BINARY as string, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#process = child;
    await waitForNatsReady(child);
  }

  /** Stops the server (SIGKILL by default: an outage, not a shutdown). */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  /** Connections the server has now, with their client names (the monitoring endpoint `/connz`). */
  async connections(): Promise<{ name?: string }[]> {
    const response = await fetch(`http://127.0.0.1:${this.monitorPort}/connz`);
    const body = (await response.json()) as { connections?: { name?: string }[] };
    return body.connections ?? [];
  }

  /** Stops it and removes its store. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}

const execFileAsync = promisify(execFile);

/**
 * Closes RabbitMQ connections from the server side (`rabbitmqctl close_connection`), those whose
 * client-provided name is `connectionName`. Returns how many it closed.
 */
export async function closeRabbitConnections(connectionName: string): Promise<number> {
  const pids = await rabbitConnections(connectionName);
  for (const pid of pids) {
    await execFileAsync('rabbitmqctl', ['-q', 'close_connection', pid, 'postbox test: connection loss'], {
      timeout: 60_000,
    });
  }
  return pids.length;
}

/** Pids of the RabbitMQ connections whose client-provided name is `connectionName` (`rabbitmqctl list_connections`). */
export async function rabbitConnections(connectionName: string): Promise<string[]> {
  const { stdout } = await execFileAsync(
    'rabbitmqctl',
    ['-q', 'list_connections', '--no-table-headers', 'pid', 'client_properties'],
    { timeout: 60_000 },
  );
  // client_properties prints as Erlang-like terms: [{"connection_name","postbox:…"},…].
  const needle = `{"connection_name","${connectionName}"}`;
  return stdout
    .split('\n')
    .map((line) => line.split('\t'))
    .filter(([, properties]) => properties?.includes(needle))
    .map(([name]) => name as string);
}
