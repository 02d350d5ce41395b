import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/embedded.ts';
import { childEnv, cliEntry, type RunningNode, repoRoot, startNode } from '../foundation/processes.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

/**
 * The README's shell examples, run as pasted. A block is picked by the HTML comment just above it:
 * `<!-- readme-test: live-server … -->` runs against a fresh `postbox serve` (its `localhost:4000` pointed at
 * the test's port, nothing else changed), `<!-- readme-test: database … -->` runs with DATABASE_URL set.
 * Each command (continuation lines joined) runs in bash from the repository root and must exit 0.
 */
const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');

function blocks(kind: 'live-server' | 'database'): string[][] {
  const found: string[][] = [];
  const pattern = new RegExp(`<!-- readme-test: ${kind}\\b[^>]*-->\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\``, 'g');
  for (const match of readme.matchAll(pattern)) {
    const commands = (match[1] ?? '')
      .replace(/\\\n\s*/g, '')
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
    found.push(commands);
  }
  return found;
}

function run(
  command: string,
  env: NodeJS.ProcessEnv,
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('bash', ['-c', command], {
    cwd: repoRoot,
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

let database: TestDatabase;
let server: RunningNode | undefined;
let port: number;

beforeAll(async () => {
  database = await createTestDatabase();
  port = await freePort();
  // The newcomer's `npm start` has auth off; so does this server (against a DATABASE_URL it defaults to on).
  server = startNode(
    [cliEntry, 'serve'],
    childEnv({
      DATABASE_URL: database.url,
      POSTBOX_AUTH: 'false',
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'info',
      // Small pools: the suite shares one server's max_connections among test files running in parallel.
      POSTBOX_POOL_SIZE: '6',
      POSTBOX_API_POOL_SIZE: '3',
      POSTBOX_WORKER_CONCURRENCY: '2',
    }),
  );
  await server.waitForLine(/postbox is up/, 90_000);
}, 120_000);

afterAll(async () => {
  if (server) {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  await database?.drop();
});

describe('the README examples, run as pasted', () => {
  it('the GraphQL curl calls: a product, an order for it, the order afterwards', () => {
    const [commands, ...more] = blocks('live-server');
    expect(more).toEqual([]);
    expect(commands?.length).toBeGreaterThanOrEqual(3);
    const outputs: unknown[] = [];
    for (const command of commands ?? []) {
      const result = run(command.replaceAll('localhost:4000', `localhost:${port}`), process.env);
      expect(result, command).toMatchObject({ status: 0 });
      if (command.startsWith('curl')) outputs.push(JSON.parse(result.stdout));
    }
    interface Answer {
      data?: {
        addProduct?: unknown;
        placeOrder?: { __typename: string; order?: { id: string; status: string } };
        orders?: { edges: unknown[] };
      };
    }
    const [product, order, orders] = outputs as Answer[];
    for (const output of outputs) expect(output).not.toHaveProperty('errors');
    expect(product?.data?.addProduct).toEqual({
      __typename: 'AddProductSuccess',
      product: { sku: 'LAPTOP', stock: 10 },
    });
    expect(order?.data?.placeOrder).toMatchObject({
      __typename: 'PlaceOrderSuccess',
      order: { status: 'PLACED' },
    });
    const placed = order?.data?.placeOrder?.order?.id;
    expect(orders?.data?.orders?.edges).toEqual([{ node: { id: placed, status: expect.any(String) } }]);
  });

  it('the SQL examples: psql and postbox sql on the same query', () => {
    const [commands, ...more] = blocks('database');
    expect(more).toEqual([]);
    const env = { ...childEnv({ DATABASE_URL: database.url }), PGCONNECT_TIMEOUT: '10' };
    let ran = 0;
    for (const command of commands ?? []) {
      if (command.startsWith('psql') && spawnSync('bash', ['-c', 'command -v psql']).status !== 0) {
        console.warn('psql is not installed: the README psql example is not run');
        continue;
      }
      const result = run(command, env);
      expect(result, `${command}\n${result.stderr}`).toMatchObject({ status: 0 });
      expect(result.stdout).toMatch(/placed/);
      ran += 1;
    }
    expect(ran).toBeGreaterThanOrEqual(1);
  });
});
