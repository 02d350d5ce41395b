import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  listConsumers,
  listDeadLetters,
  pauseConsumer,
  redriveDeadLetters,
  replayConsumer,
  resumeConsumer,
} from '../../src/engine/consumers/admin.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * The delivery guarantees, run once per way drains get started (direct hand-off from the relay, and the
 * job queue alone): both must hold every one of them.
 */
export function deliverySuite(label: string, engine: { readonly handoffConcurrency?: number }): void {
  let t: TestDatabase;
  let postbox: Postbox;
  let poisonFails = true;
  /** Successful deliveries as reported to onDelivery (metrics), per consumer. */
  const reportedOk = new Map<string, number>();
  const attemptsSeen: Array<{ consumer: string; streamId: string; n: number; attempt: number; at: number }> =
    [];
  const record = (consumer: string) => (event: { n: number; streamId: string; attempt: number }) => {
    attemptsSeen.push({ consumer, ...event, at: Date.now() });
  };

  beforeAll(async () => {
    t = await createTestDatabase({ poolSize: 20 });
    await createEffectsTable(t.db as never);
    postbox = await startPostbox({
      pool: t.pool,
      pollIntervalMs: 100,
      concurrency: 6,
      ...engine,
      consumers: [
        effectsConsumer({ name: 'alpha', echo: true }),
        effectsConsumer({ name: 'beta', partitions: 2, batchSize: 7 }),
        effectsConsumer({
          name: 'poisoned',
          failPoison: () => poisonFails,
          before: record('poisoned'),
          retry: { initialDelayMs: 300, maxDelayMs: 5000, maxAttempts: 4, jitter: 0 },
        }),
        effectsConsumer({
          name: 'blocker',
          failPoison: () => poisonFails,
          onExhausted: 'block',
          retry: { initialDelayMs: 50, maxDelayMs: 100, maxAttempts: 2, jitter: 0 },
        }),
      ],
    });
    postbox.events.on('delivery', (outcome) => {
      if (outcome.ok) reportedOk.set(outcome.consumer, (reportedOk.get(outcome.consumer) ?? 0) + 1);
    });
  });
  afterAll(async () => {
    await postbox?.stop();
    await t?.drop();
  });

  async function append(streamId: string, ns: number[], poison: number[] = []): Promise<void> {
    for (const n of ns) {
      await t.db
        .transaction()
        .execute((trx) =>
          appendEvents(trx, [
            Ticked.create(streamId, { n, ...(poison.includes(n) ? { poison: true } : {}) }),
          ]),
        );
    }
  }

  async function effects(consumer: string, streamIds: string[]) {
    const { rows } = await sql<{
      event_id: string;
      stream_id: string;
      stream_version: number;
      attempt: number;
    }>`
      select event_id, stream_id, stream_version, attempt from test_effects
      where consumer = ${consumer} and stream_id = any(${streamIds}) order by seq`.execute(t.db);
    return rows;
  }

  describe(`delivery (${label})`, () => {
    it('delivers every event to every subscribed consumer exactly once, in stream order', async () => {
      const streams = Array.from({ length: 12 }, () => randomUUID());
      await Promise.all(streams.map((stream) => append(stream, [1, 2, 3, 4, 5])));
      for (const consumer of ['alpha', 'beta']) {
        const rows = await waitFor(`${consumer} to handle 60 events`, async () => {
          const rows = await effects(consumer, streams);
          return rows.length >= 60 && rows;
        });
        expect(rows).toHaveLength(60);
        expect(new Set(rows.map((row) => row.event_id)).size).toBe(60);
        for (const stream of streams) {
          expect(rows.filter((row) => row.stream_id === stream).map((row) => row.stream_version)).toEqual([
            1, 2, 3, 4, 5,
          ]);
        }
      }
      // Events appended by a handler commit with its delivery: exactly one Echoed per Ticked, caused by it.
      const echoes = await sql<{ n: string; caused: string }>`
        select count(*)::text as n, count(distinct metadata->>'causationId')::text as caused
        from outbox.events where type = 'Echoed' and stream_id in (
          select id::text from outbox.events where stream_id = any(${streams}))`.execute(t.db);
      expect(echoes.rows[0]).toEqual({ n: '60', caused: '60' });
    });

    it('retries a poison event with growing delays, holds its stream, lets other streams flow, then dead-letters it', async () => {
      const [sick, healthy] = [randomUUID(), randomUUID()];
      await append(sick, [1, 2, 3], [2]);
      await append(healthy, [1, 2, 3]);

      const healthyRows = await waitFor('healthy stream delivered', async () => {
        const rows = await effects('poisoned', [healthy]);
        return rows.length === 3 && rows;
      });
      expect(healthyRows.map((row) => row.stream_version)).toEqual([1, 2, 3]);

      // While event 2 is retrying, event 3 of the same stream must wait behind it.
      const retrying = await waitFor('sick stream blocked', async () => {
        const { rows } = await sql<{ attempts: number; stream_version: number }>`
          select attempts, stream_version from outbox.blocked_streams
          where consumer = 'poisoned' and stream_id = ${sick}`.execute(t.db);
        return rows[0]?.attempts === 2 && rows[0];
      });
      expect(retrying.stream_version).toBe(2);
      expect((await effects('poisoned', [sick])).map((row) => row.stream_version)).toEqual([1]);

      // After 4 attempts: dead-lettered; the stream continues (onExhausted: dead_letter).
      const after = await waitFor('dead letter and stream continued', async () => {
        const rows = await effects('poisoned', [sick]);
        return rows.length === 2 && rows;
      });
      expect(after.map((row) => row.stream_version)).toEqual([1, 3]);
      const dead = (await listDeadLetters(t.db, 'poisoned')).filter((row) => row.stream_id === sick);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ stream_version: 2, attempts: 4, event_type: 'Ticked' });
      expect(dead[0]?.last_error).toContain('poison event 2');
      expect(dead[0]?.error_stack).toContain('Error: poison event 2');

      // Delays grow: 300 ms, 600 ms, 1200 ms (jitter 0) between the four attempts.
      const tries = attemptsSeen.filter((a) => a.consumer === 'poisoned' && a.streamId === sick && a.n === 2);
      expect(tries.map((a) => a.attempt)).toEqual([1, 2, 3, 4]);
      const times = tries.map((a) => a.at);
      const gaps = times.slice(1).map((at, i) => at - (times[i] ?? at));
      expect(gaps[0]).toBeGreaterThanOrEqual(290);
      expect(gaps[1]).toBeGreaterThan(gaps[0] as number);
      expect(gaps[2]).toBeGreaterThan(gaps[1] as number);

      // Redrive after the handler is fixed: delivered once more, the dead letter closed.
      poisonFails = false;
      try {
        expect(await redriveDeadLetters(t.db, 'poisoned', { ids: dead.map((row) => String(row.id)) })).toBe(
          1,
        );
        const redriven = await waitFor('redrive', async () => {
          const rows = await effects('poisoned', [sick]);
          return rows.length === 3 && rows;
        });
        expect(redriven.map((row) => row.stream_version)).toEqual([1, 3, 2]);
        const open = (await listDeadLetters(t.db, 'poisoned')).filter((row) => row.stream_id === sick);
        expect(open).toHaveLength(0);
        // Metrics count committed deliveries only: batches rerun after a failure are not counted twice.
        const { rows: committed } = await sql<{ n: string }>`
          select count(*)::text as n from test_effects where consumer = 'poisoned'`.execute(t.db);
        expect(reportedOk.get('poisoned')).toBe(Number(committed[0]?.n));
      } finally {
        poisonFails = true;
      }
    });

    it("with onExhausted 'block' the stream waits for an operator, and redrive releases it in order", async () => {
      const sick = randomUUID();
      await append(sick, [1, 2, 3, 4], [2]);
      await waitFor('parked', async () => {
        const { rows } = await sql<{ next_attempt_at: Date | null; attempts: number }>`
          select next_attempt_at, attempts from outbox.blocked_streams
          where consumer = 'blocker' and stream_id = ${sick}`.execute(t.db);
        return rows[0] && rows[0].next_attempt_at === null && rows[0].attempts === 2;
      });
      await new Promise((resolve) => setTimeout(resolve, 300)); // give a wrong implementation time to move on
      expect((await effects('blocker', [sick])).map((row) => row.stream_version)).toEqual([1]);
      const { rows: parked } = await sql`select 1 from outbox.blocked_streams
        where consumer = 'blocker' and stream_id = ${sick} and next_attempt_at is null`.execute(t.db);
      expect(parked).toHaveLength(1);
      expect((await listDeadLetters(t.db, 'blocker')).filter((row) => row.stream_id === sick)).toHaveLength(
        1,
      );
      const summary = (await listConsumers(t.db)).find((c) => c.name === 'blocker');
      expect(summary?.blocked).toBeGreaterThanOrEqual(1);

      poisonFails = false;
      try {
        await redriveDeadLetters(t.db, 'blocker');
        const rows = await waitFor('released', async () => {
          const rows = await effects('blocker', [sick]);
          return rows.length === 4 && rows;
        });
        expect(rows.map((row) => row.stream_version)).toEqual([1, 2, 3, 4]);
        // Every stream 'blocker' had parked is released by the redrive — also the earlier test's poisoned
        // one, which another partition's drain may release a moment later.
        await waitFor('no stream of blocker parked', async () => {
          const { rows: blocked } =
            await sql`select 1 from outbox.blocked_streams where consumer = 'blocker'`.execute(t.db);
          return blocked.length === 0;
        });
        expect((await listDeadLetters(t.db, 'blocker')).filter((row) => row.stream_id === sick)).toHaveLength(
          0,
        );
      } finally {
        poisonFails = true;
      }
    });

    it('replay from a position re-delivers exactly the events after it, in order', async () => {
      const streams = [randomUUID(), randomUUID()];
      await append(streams[0] as string, [1, 2, 3]);
      await append(streams[1] as string, [1, 2, 3]);
      await waitFor('beta caught up', async () => (await effects('beta', streams)).length === 6);
      const { rows: log } = await sql<{ position: string; stream_id: string; stream_version: number }>`
        select position::text, stream_id, stream_version from outbox.events
        where stream_id = any(${streams}) order by log_xid, position`.execute(t.db);
      const pivot = log[2] as { position: string };
      // Everything in the whole log after the pivot is replayed, for every stream; count only ours.
      await replayConsumer(t.db, 'beta', { afterPosition: pivot.position });
      const expected = log.slice(3).map((row) => `${row.stream_id}:${row.stream_version}`);
      const replayed = await waitFor('replay', async () => {
        const rows = await effects('beta', streams);
        return rows.length === 6 + expected.length && rows.slice(6);
      });
      expect(replayed.map((row) => `${row.stream_id}:${row.stream_version}`).sort()).toEqual(
        [...expected].sort(),
      );
      for (const stream of streams) {
        const versions = replayed.filter((row) => row.stream_id === stream).map((row) => row.stream_version);
        expect(versions).toEqual([...versions].sort((a, b) => a - b));
      }
    });

    it('pause holds delivery, resume continues from the checkpoint', async () => {
      const stream = randomUUID();
      await pauseConsumer(t.db, 'beta');
      await append(stream, [1, 2]);
      await waitFor('alpha delivered', async () => (await effects('alpha', [stream])).length === 2);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await effects('beta', [stream])).toHaveLength(0);
      expect((await listConsumers(t.db)).find((c) => c.name === 'beta')?.status).toBe('paused');
      await resumeConsumer(t.db, 'beta');
      await waitFor('beta resumed', async () => (await effects('beta', [stream])).length === 2);
    });

    it('a lost NOTIFY (listener connection killed) delays delivery by at most a poll, and the relay reconnects', async () => {
      const { rows: before } = await sql<{ pid: number }>`
        select pid from pg_stat_activity where application_name = 'postbox-relay' and datname = current_database()`.execute(
        t.db,
      );
      expect(before.length).toBeGreaterThan(0);
      await sql`select pg_terminate_backend(pid) from pg_stat_activity
                where application_name = 'postbox-relay' and datname = current_database()`.execute(t.db);
      const stream = randomUUID();
      await append(stream, [1, 2, 3]);
      await waitFor(
        'delivery without the listener',
        async () => (await effects('alpha', [stream])).length === 3,
        10_000,
      );
      const reconnected = await waitFor('relay reconnected', async () => {
        const { rows } = await sql<{ pid: number }>`
          select pid from pg_stat_activity where application_name = 'postbox-relay' and datname = current_database()`.execute(
          t.db,
        );
        return rows.length > 0 && postbox.isLeader() && rows;
      });
      expect(reconnected.map((row) => row.pid)).not.toEqual(before.map((row) => row.pid));
    });

    it('reports lag per consumer from outbox.consumer_lag', async () => {
      await pauseConsumer(t.db, 'beta');
      try {
        const stream = randomUUID();
        await append(stream, [1, 2, 3]);
        const beta = await waitFor('lag visible', async () => {
          const summary = (await listConsumers(t.db)).find((c) => c.name === 'beta');
          return summary && summary.lag >= 3 && summary;
        });
        expect(beta.partitions).toBe(2);
        expect(beta.oldestPendingMs).toBeGreaterThanOrEqual(0);
      } finally {
        await resumeConsumer(t.db, 'beta');
      }
      await waitFor(
        'lag drained',
        async () => (await listConsumers(t.db)).find((c) => c.name === 'beta')?.lag === 0,
      );
    });
  });
}
