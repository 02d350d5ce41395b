import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { createMetrics, type Metrics } from '../../src/observability/metrics.ts';
import { Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

let t: TestDatabase;
let metrics: Metrics;

beforeAll(async () => {
  t = await createTestDatabase();
  metrics = createMetrics(t.db, { defaultMetrics: false });
});

afterAll(async () => {
  await t?.drop();
});

const appended = (text: string): number =>
  text
    .split('\n')
    .filter((line) => line.startsWith('postbox_events_appended_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);

/** Resolves after the metrics' cache has certainly expired. */
const pastCache = () => new Promise((resolve) => setTimeout(resolve, 1100));

describe('/metrics scrapes', () => {
  it('concurrent scrapers count every appended event once', async () => {
    await metrics.render(); // starts counting at the log's current end
    const stream = randomUUID();
    const events = Array.from({ length: 400 }, (_, n) => Ticked.create(stream, { n }));
    await t.db.transaction().execute((trx) => appendEvents(trx, events));
    await pastCache();
    const texts = await Promise.all(Array.from({ length: 4 }, () => metrics.render()));
    for (const text of texts) expect(appended(text)).toBe(400);
    await pastCache();
    // A later scrape adds nothing: the cursor is at the newest counted event (it was compared as text).
    expect(appended(await metrics.render())).toBe(400);
  });

  it('scrapes within the cache window share one refresh', async () => {
    await pastCache();
    let queries = 0;
    const count = () => {
      queries++;
    };
    t.pool.on('acquire', count);
    try {
      await Promise.all(Array.from({ length: 5 }, () => metrics.render()));
      const concurrent = queries;
      await metrics.render();
      expect(queries).toBe(concurrent);
      // One refresh: the lag view and the appended-events count (in one transaction).
      expect(concurrent).toBeLessThanOrEqual(2);
    } finally {
      t.pool.off('acquire', count);
    }
  });

  it('a slow lag read does not hang the scrape: the previous values come back, and the failure is counted', async () => {
    const slow = createMetrics(t.db, { defaultMetrics: false, cacheMs: 0, statementTimeoutMs: 300 });
    const first = await slow.render();
    const lagLines = (text: string) =>
      text.split('\n').filter((line) => line.startsWith('postbox_consumer_lag'));
    // The lag view reads outbox.consumer_partitions: a session holding it exclusively makes the read wait.
    const blocker = await t.pool.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table outbox.consumer_partitions in access exclusive mode');
      const started = performance.now();
      const text = await slow.render();
      const tookMs = performance.now() - started;
      expect(tookMs).toBeLessThan(3000);
      expect(text).toMatch(/^postbox_metrics_refresh_failures_total 1$/m);
      expect(lagLines(text)).toEqual(lagLines(first));
      await blocker.query('rollback');
    } finally {
      blocker.release();
    }
    const after = await slow.render();
    expect(after).toMatch(/^postbox_metrics_refresh_failures_total 1$/m);
    expect(after).toMatch(/^postbox_metrics_last_refresh_timestamp_seconds \d/m);
  });
});
