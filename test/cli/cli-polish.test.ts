import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTBOX_VERSION } from '../../src/config/version.ts';
import {
  childEnv,
  cliEntry,
  makeTempDir,
  type RunningNode,
  runNode,
  startNode,
  waitUntilGone,
} from '../foundation/processes.ts';

let dataDir: string;
let serve: RunningNode;

const postbox = (args: readonly string[], env: Record<string, string> = {}) =>
  runNode([cliEntry, ...args], childEnv({ POSTBOX_DATA_DIR: dataDir, LOG_LEVEL: 'warn', ...env }));

beforeAll(async () => {
  dataDir = await makeTempDir('postbox-cli-polish-');
  serve = startNode(
    [cliEntry, 'serve'],
    childEnv({ POSTBOX_DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info' }),
  );
  await serve.waitForLine(/postbox is up/);
}, 90_000);

afterAll(async () => {
  if (serve?.child.pid && serve.child.exitCode === null) {
    serve.child.kill('SIGTERM');
    if (!(await waitUntilGone(serve.child.pid, 15_000))) serve.child.kill('SIGKILL');
  }
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

describe('postbox CLI', () => {
  it('--version prints the version', async () => {
    const result = await postbox(['--version']);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(POSTBOX_VERSION);
  });

  it('DATABASE_URL=postgres:// is a configuration error that says what a URL needs', async () => {
    const result = await postbox(['consumers'], { DATABASE_URL: 'postgres://' });
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('DATABASE_URL: has no host');
  });

  it('consumers, pause/resume, dead-letters and sql work while `serve` holds the embedded database', async () => {
    const list = await postbox(['consumers', 'list', '--json']);
    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
    const [first] = (JSON.parse(list.stdout) as Array<{ name: string }>).map((c) => c.name);
    expect(first).toBeDefined();

    const paused = await postbox(['consumers', 'pause', first ?? '']);
    expect(paused.code).toBe(0);
    expect(paused.stdout).toContain(`${first} paused`);
    const resumed = await postbox(['consumers', 'resume', first ?? '']);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain(`${first} resumed`);

    const deadLetters = await postbox(['dead-letters', 'list']);
    expect(deadLetters.code).toBe(0);
    const sql = await postbox(['sql']);
    expect(sql.code).toBe(0);
  }, 60_000);

  it('an unknown consumer is an error with a non-zero exit', async () => {
    for (const args of [
      ['consumers', 'pause', 'nope'],
      ['dead-letters', 'list', 'nope'],
      ['dead-letters', 'redrive', 'nope'],
    ]) {
      const result = await postbox(args);
      expect(result.code, args.join(' ')).not.toBe(0);
      expect(result.stderr).toContain('No consumer named nope');
    }
  }, 60_000);
});
