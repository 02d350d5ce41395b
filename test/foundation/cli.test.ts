import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_LINES } from '../../src/db/migration-lines.ts';
import { ENGINE_MIGRATIONS, readMigrationFiles } from '../../src/engine/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { childEnv, cliEntry, repoRoot, runNode } from './processes.ts';

/** Runs `postbox <args>` the way the installed bin does (`bin/postbox.js` imports `src/cli/main.ts`). */
function postbox(args: readonly string[], env: Record<string, string> = {}) {
  return runNode([cliEntry, ...args], childEnv({ LOG_LEVEL: 'warn', ...env }));
}

describe('postbox --help', () => {
  it('describes the program and lists its commands', async () => {
    const result = await runNode([path.join(repoRoot, 'bin', 'postbox.js'), '--help'], childEnv());
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: postbox');
    expect(result.stdout).toContain('transactional outbox');
    expect(result.stdout).toMatch(/^\s+serve\b/m);
    expect(result.stdout).toMatch(/^\s+migrate\b/m);
  });

  it('describes migrate and its --status option', async () => {
    const result = await postbox(['migrate', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: postbox migrate');
    expect(result.stdout).toContain('apply pending migrations');
    expect(result.stdout).toContain('--status');
  });

  it('describes serve and its role switches', async () => {
    const result = await postbox(['serve', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: postbox serve');
    expect(result.stdout).toContain('run the relay, the consumers and the API');
    expect(result.stdout).toContain('--no-api');
    expect(result.stdout).toContain('--no-workers');
  });

  it('rejects an unknown command with a non-zero exit', async () => {
    const result = await postbox(['frobnicate']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("unknown command 'frobnicate'");
  });

  it('rejects an unknown option with a non-zero exit', async () => {
    const result = await postbox(['migrate', '--stauts']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("unknown option '--stauts'");
  });
});

describe('postbox migrate', () => {
  let migrated: TestDatabase;
  let empty: TestDatabase;

  beforeAll(async () => {
    [migrated, empty] = await Promise.all([createTestDatabase(), createTestDatabase({ migrated: false })]);
  });

  afterAll(async () => {
    await Promise.all([migrated?.drop(), empty?.drop()]);
  });

  it('--status lists every migration of a migrated database as applied', async () => {
    const result = await postbox(['migrate', '--status'], { DATABASE_URL: migrated.url });

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ applied \| outbox\/000001_event_log\.sql +\| \d{4}-\d\d-\d\dT/m);
    const count = (await allMigrationFiles()).length;
    expect(result.stdout).toContain(`${count} applied, 0 pending`);
  });

  it('migrates an empty database, and --status shows it before and after', async () => {
    const files = await allMigrationFiles();

    const before = await postbox(['migrate', '--status'], { DATABASE_URL: empty.url });
    expect(before.code).toBe(0);
    expect(before.stdout).toMatch(/^ pending \| outbox\/000001_event_log\.sql +\| *$/m);
    expect(before.stdout).toContain(`0 applied, ${files.length} pending`);

    const run = await postbox(['migrate'], { DATABASE_URL: empty.url });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`applied ${files.length}: ${files.join(', ')}\n`);

    const after = await postbox(['migrate', '--status'], { DATABASE_URL: empty.url });
    expect(after.stdout).toContain(`${files.length} applied, 0 pending`);

    const again = await postbox(['migrate'], { DATABASE_URL: empty.url });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('up to date\n');
  });

  it('exits non-zero with a readable message when the database cannot be reached', async () => {
    const url = new URL(migrated.url);
    url.pathname = '/postbox_no_such_database';
    const result = await postbox(['migrate'], { DATABASE_URL: url.toString() });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^postbox: .*postbox_no_such_database/m);
  });
});

/** Every migration `postbox migrate` applies, as `line/file`, in the order it applies them. */
async function allMigrationFiles(): Promise<string[]> {
  const lines = [ENGINE_MIGRATIONS, ...SERVICE_LINES];
  const files = await Promise.all(
    lines.map(async (line) =>
      (await readMigrationFiles(line.dir)).map((file) => `${line.name}/${file.name}`),
    ),
  );
  return files.flat();
}
