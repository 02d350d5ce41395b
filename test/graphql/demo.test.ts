import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDemo } from '../../src/cli/demo.command.ts';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { type RunningShop, startShop } from '../shop/shop-fixtures.ts';

let shop: RunningShop;
let server: ApiServer;

beforeAll(async () => {
  shop = await startShop();
  server = await startApiServer({
    db: shop.db,
    connectionString: shop.database.url,
    logger: silentLogger,
    auth: { enabled: false },
    host: '127.0.0.1',
    port: 0,
  });
});

afterAll(async () => {
  await server?.close();
  await shop?.stop();
});

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('postbox demo', () => {
  it('places orders through the API while subscribed and reports statuses, event counts and latency', async () => {
    const out = capture();
    const progress = capture();
    const report = await runDemo({
      orders: 40,
      concurrency: 8,
      url: server.url,
      cancelShare: 0.2,
      out: out.stream,
      progress: progress.stream,
    });
    expect(report.placed).toBe(40);
    expect(report.unfinished).toBe(0);
    const finals = Object.values(report.statuses).reduce((sum, n) => sum + n, 0);
    expect(finals).toBe(40);
    expect(report.eventTypes.OrderPlaced).toBe(40);
    expect(report.eventTypes.ProductAdded).toBe(6);
    expect(report.cancels.cancelled + report.cancels.tooLate).toBe(report.cancels.requested);
    expect(report.statuses.CANCELLED ?? 0).toBe(report.cancels.cancelled);
    expect(report.latencyMs.p50).toBeGreaterThan(0);
    expect(report.latencyMs.p99).toBeGreaterThanOrEqual(report.latencyMs.p95);

    const text = out.text();
    expect(text).toMatch(/Orders by final status/);
    expect(text).toMatch(/OrderPlaced\s+40/);
    expect(text).toMatch(/p50 \d+ ms\s+p95 \d+ ms\s+p99 \d+ ms/);
    expect(text).toMatch(/Where to look next/);
    expect(progress.text()).toMatch(/40\/40 orders final/);
  });

  it('runs in process against a DATABASE_URL with auth on, using an admin key of its own that it revokes after', async () => {
    const database = await createTestDatabase();
    const saved = { ...process.env };
    // The demo reads its configuration like `postbox demo` does: from the environment.
    // Small pools: the suite shares one server's max_connections among test files running in parallel.
    Object.assign(process.env, {
      DATABASE_URL: database.url,
      POSTBOX_AUTH: 'true',
      LOG_LEVEL: 'warn',
      POSTBOX_POOL_SIZE: '6',
      POSTBOX_API_POOL_SIZE: '3',
      POSTBOX_WORKER_CONCURRENCY: '2',
    });
    try {
      const out = capture();
      const report = await runDemo({
        orders: 10,
        concurrency: 4,
        cancelShare: 0,
        out: out.stream,
        progress: capture().stream,
      });
      expect(report.placed).toBe(10);
      expect(report.unfinished).toBe(0);
      const { rows } = await database.pool.query<{ name: string; revoked: boolean }>(
        'select name, revoked_at is not null as revoked from postbox.api_keys',
      );
      expect(rows).toEqual([{ name: expect.stringMatching(/^postbox demo /), revoked: true }]);
    } finally {
      process.env = saved;
      await database.drop();
    }
  });
});
