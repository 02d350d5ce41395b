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
});
