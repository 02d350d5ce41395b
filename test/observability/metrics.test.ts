import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { checkReadiness } from '../../src/observability/health.ts';
import { createMetrics, type Metrics } from '../../src/observability/metrics.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

let t: TestDatabase;
let metrics: Metrics;
let postbox: Postbox;
beforeAll(async () => {
  t = await createTestDatabase();
  await createEffectsTable(t.db as never);
  metrics = createMetrics(t.db, { defaultMetrics: false });
  await metrics.render(); // sets the appended-events cursor at the current end of the log
  postbox = await startPostbox({
    pool: t.pool,
    pollIntervalMs: 100,
    consumers: [
      effectsConsumer({ name: 'counted' }),
      effectsConsumer({ name: 'fragile', retry: { maxAttempts: 1 }, failPoison: () => true }),
    ],
  });
  postbox.events.on('delivery', metrics.onDelivery);
  postbox.events.on('relay', ({ kind, scheduled }) => metrics.onRelayActivity(kind, scheduled));
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

/** The value of one sample line, e.g. `postbox_dead_letters{consumer="fragile"}`. */
const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('metrics', () => {
  it('counts appended events, deliveries, failures, dead letters and relay activity; reports lag', async () => {
    const stream = randomUUID();
    const events = [1, 2, 3, 4].map((n) =>
      Ticked.create(stream, { n, ...(n === 4 ? { poison: true } : {}) }),
    );
    await t.db.transaction().execute((trx) => appendEvents(trx, events));
    const text = await waitFor('deliveries counted', async () => {
      const text = await metrics.render();
      return (sample(text, 'postbox_dead_letters{consumer="fragile"}') ?? 0) >= 1 && text;
    });
    expect(sample(text, 'postbox_events_appended_total{type="Ticked"}')).toBe(4);
    expect(
      sample(text, 'postbox_deliveries_total{consumer="counted",event_type="Ticked",outcome="success"}'),
    ).toBe(3);
    expect(
      sample(text, 'postbox_deliveries_total{consumer="fragile",event_type="Ticked",outcome="success"}'),
    ).toBe(3);
    expect(
      sample(text, 'postbox_deliveries_total{consumer="fragile",event_type="Ticked",outcome="dead_letter"}'),
    ).toBe(1);
    expect(sample(text, 'postbox_handler_duration_seconds_count{consumer="counted"}')).toBe(3);
    expect(sample(text, 'postbox_consumer_lag_events{consumer="counted"}')).toBe(0);
    expect(text).toMatch(/postbox_relay_activity_total\{kind="(scan|poll|wakeup)"\} \d+/);
    expect(text).toContain('# TYPE postbox_consumer_oldest_pending_seconds gauge');
  });
});

describe('readiness', () => {
  it('is ready with the database up, migrations applied and workers running; not ready otherwise', async () => {
    const ready = await checkReadiness({ pool: t.pool, workersRunning: () => postbox.isRunning() });
    expect(ready).toMatchObject({
      ready: true,
      checks: { database: { ok: true }, migrations: { ok: true } },
    });
    expect((await checkReadiness({ pool: t.pool, workersRunning: () => false })).ready).toBe(false);
    expect((await checkReadiness({ pool: t.pool, workersRunning: undefined })).checks.workers.detail).toMatch(
      /not run/,
    );

    const empty = await createTestDatabase({ migrated: false });
    try {
      const unmigrated = await checkReadiness({ pool: empty.pool, workersRunning: undefined });
      expect(unmigrated.ready).toBe(false);
      expect(unmigrated.checks.migrations.detail).toContain('000001_event_log.sql');
    } finally {
      await empty.drop();
    }
  });
});
