import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

// Two deployments on one database, each with consumers of its own (here two engines in one test process:
// each has its own relay, graphile-worker runner and consumer set, as two services would).

let t: TestDatabase;
const running: Postbox[] = [];

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 20 });
  await createEffectsTable(t.db as never);
});
afterAll(async () => {
  for (const postbox of running) await postbox.stop();
  await t?.drop();
});

/** Starts a deployment running `consumer`; records which consumers' drain jobs its workers ran. */
async function deployment(consumer: string, jobsRun: string[]): Promise<Postbox> {
  const postbox = await startPostbox({
    pool: t.pool,
    pollIntervalMs: 100,
    concurrency: 2,
    // Everything through the job queue: the routing of jobs between deployments is what is tested.
    handoffConcurrency: 0,
    consumers: [effectsConsumer({ name: consumer, partitions: 2 })],
  });
  postbox.events.on('job', (target) => jobsRun.push(target.consumer));
  running.push(postbox);
  return postbox;
}

async function append(from: number, count: number): Promise<void> {
  for (let n = from; n < from + count; n++) {
    await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(`d${n % 5}`, { n })]));
  }
}

const handled = async (consumer: string) => {
  const { rows } = await sql<{ n: number; d: number }>`
    select count(*)::int as n, count(distinct event_id)::int as d from test_effects
    where consumer = ${consumer}`.execute(t.db);
  return rows[0] ?? { n: 0, d: 0 };
};

describe('several deployments on one database', () => {
  it('every registered consumer is served whichever process leads; a process drains only its own consumers', async () => {
    const jobsOfA: string[] = [];
    const jobsOfB: string[] = [];
    const a = await deployment('alpha', jobsOfA);
    await waitFor("alpha's deployment leads", async () => a.isLeader());
    const b = await deployment('beta', jobsOfB);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(b.isLeader()).toBe(false);

    await append(0, 20);
    // beta's deployment does not lead: the leader (alpha's) must schedule beta's partitions too.
    for (const consumer of ['alpha', 'beta']) {
      await waitFor(`${consumer} delivered`, async () => (await handled(consumer)).d === 20, 20_000);
    }

    // The leader goes away: beta's deployment takes over and keeps alpha's events for alpha.
    await a.stop();
    running.splice(running.indexOf(a), 1);
    await waitFor('beta leads', async () => b.isLeader(), 20_000);
    await append(20, 10);
    await waitFor('beta delivered the rest', async () => (await handled('beta')).d === 30, 20_000);
    const jobsOfA2: string[] = [];
    await deployment('alpha', jobsOfA2);
    await waitFor('alpha delivered the rest', async () => (await handled('alpha')).d === 30, 20_000);

    for (const consumer of ['alpha', 'beta']) expect(await handled(consumer)).toEqual({ n: 30, d: 30 });
    // No worker took a drain job of a consumer its process does not run (it would have completed it
    // without delivering anything).
    expect(jobsOfA.filter((consumer) => consumer !== 'alpha')).toEqual([]);
    expect(jobsOfA2.filter((consumer) => consumer !== 'alpha')).toEqual([]);
    expect(jobsOfB.filter((consumer) => consumer !== 'beta')).toEqual([]);
  }, 120_000);
});
