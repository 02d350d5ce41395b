import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogOrderError } from '../../src/engine/errors.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { childEnv, cliEntry, runNode } from '../foundation/processes.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

// After pg_dump/restore (or a logical-replication cut-over) into another cluster, the log's transaction ids
// are ahead of the new cluster's counter. `postbox log rebase` re-bases them (and the checkpoints) so that
// delivery resumes: every event not yet delivered is delivered, none delivered before is delivered again,
// and each stream stays in order.

const STREAMS = ['s1', 's2', 's3', 's4', 's5'];
let t: TestDatabase;
let postbox: Postbox | undefined;
const consumers = () => [
  effectsConsumer({ name: 'rebased', partitions: 4 }),
  effectsConsumer({ name: 'rebased-small', partitions: 1, batchSize: 3 }),
];

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 6 });
  await createEffectsTable(t.db as never);
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

/** One event per transaction (each gets a transaction id of its own), round-robin over the streams. */
async function append(count: number, from: number): Promise<void> {
  for (let n = from; n < from + count; n++) {
    const stream = STREAMS[n % STREAMS.length] as string;
    await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(stream, { n })]));
  }
}

async function effectCount(): Promise<number> {
  const { rows } = await t.pool.query<{ n: number }>('select count(*)::int as n from test_effects');
  return rows[0]?.n ?? 0;
}

function postboxCli(args: readonly string[]) {
  return runNode([cliEntry, ...args], childEnv({ LOG_LEVEL: 'warn', DATABASE_URL: t.url }));
}

describe('postbox log rebase', () => {
  it('lets delivery resume after a restore with nothing skipped and nothing delivered twice', async () => {
    postbox = await startPostbox({ pool: t.pool, pollIntervalMs: 200, consumers: consumers() });
    await append(20, 0);
    await waitFor('the first 20 events, twice', async () => (await effectCount()) === 40, 30_000);
    await postbox.stop();
    postbox = undefined;

    // Log order is not position order: B's transaction took its id first and appended last, so B sorts
    // before A although its position is higher. `rebased-small` has handled B but not A (its checkpoint is
    // at B, as a drain leaves it): A must still come after the rebase, and B must not come again.
    const early = await t.pool.connect();
    try {
      await early.query('begin');
      await early.query('select pg_current_xact_id()');
      await append(1, 100); // A, stream s1 … (n = 100 → s1)
      const { rows: b } = await early.query<{ position: string; log_xid: string; id: string }>(
        `select "position"::text, log_xid::text, event_id::text as id
         from outbox.append_event('counter', 'late', 'Ticked', '{"n": 101}')`,
      );
      await early.query(
        `update outbox.consumer_partitions set checkpoint_xid = $1::xid8, checkpoint_position = $2
         where consumer = 'rebased-small'`,
        [b[0]?.log_xid, b[0]?.position],
      );
      await early.query(
        `insert into test_effects (consumer, event_id, stream_id, stream_version, attempt)
         values ('rebased-small', $1, 'late', 1, 1)`,
        [b[0]?.id],
      );
      await early.query('commit');
    } finally {
      early.release();
    }
    // Appended while no process delivers: after the checkpoints.
    await append(10, 20);

    // As a restore into a younger cluster leaves it: every stored transaction id far ahead of the counter.
    await t.pool.query(`
      begin;
      create temporary table shift on commit drop as
        select pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000 as d;
      alter table outbox.events disable trigger events_append_only;
      update outbox.events set log_xid = (log_xid::text::bigint + (select d from shift))::text::xid8,
                               transaction_id = (transaction_id::text::bigint + (select d from shift))::text::xid8;
      alter table outbox.events enable trigger events_append_only;
      update outbox.streams set log_xid = (log_xid::text::bigint + (select d from shift))::text::xid8;
      update outbox.consumer_partitions
        set checkpoint_xid = (checkpoint_xid::text::bigint + (select d from shift))::text::xid8
        where checkpoint_xid <> '0';
      commit;`);
    const refused = await startPostbox({ pool: t.pool, consumers: consumers() }).catch(
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(LogOrderError);

    const rebase = await postboxCli(['log', 'rebase']);
    expect(rebase.stderr).toBe('');
    expect(rebase.code).toBe(0);
    expect(rebase.stdout).toMatch(
      /^rebased: .* 32 events now use \d+ ids, [1-5] checkpoints moved with them/,
    );
    const again = await postboxCli(['log', 'rebase']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^nothing to do/);

    postbox = await startPostbox({ pool: t.pool, pollIntervalMs: 200, consumers: consumers() });
    await append(10, 30);
    await waitFor('all 42 events, for both consumers', async () => (await effectCount()) >= 84, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 1000)); // a late duplicate would show by now

    const { rows } = await t.pool.query<{ consumer: string; handled: number; distinct_events: number }>(
      `select consumer, count(*)::int as handled, count(distinct event_id)::int as distinct_events
       from test_effects group by consumer order by consumer`,
    );
    expect(rows).toEqual([
      { consumer: 'rebased', handled: 42, distinct_events: 42 },
      { consumer: 'rebased-small', handled: 42, distinct_events: 42 },
    ]);
    // Per-stream order: each consumer handled each stream's versions 1, 2, 3… in that order.
    const { rows: order } = await t.pool.query<{ consumer: string; stream_id: string; versions: number[] }>(
      `select consumer, stream_id, array_agg(stream_version order by seq) as versions
       from test_effects group by consumer, stream_id`,
    );
    expect(order).toHaveLength(12);
    for (const row of order) {
      const length = row.stream_id === 'late' ? 1 : row.stream_id === 's1' ? 9 : 8;
      expect(row.versions).toEqual(Array.from({ length }, (_, i) => i + 1));
    }
  }, 120_000);
});
