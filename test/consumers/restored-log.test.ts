import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogOrderError } from '../../src/engine/errors.ts';
import { startPostbox } from '../../src/engine/postbox.ts';
import { effectsConsumer } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

// After pg_dump/restore (or a logical-replication cut-over) into another cluster, the log's transaction ids
// (log_xid) may be ahead of the new cluster's counter: new events would sort before the checkpoints and never
// be delivered. The engine must refuse to start, saying why, instead of silently stalling.

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 4 });
  // As a restore leaves it: an event whose log_xid is far ahead of this cluster's next transaction id.
  await sql`insert into outbox.streams (stream_type, stream_id, version, log_xid)
            values ('counter', 'restored', 1, (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 20000)::text::xid8)`.execute(
    t.db,
  );
  await sql`insert into outbox.events (id, log_xid, stream_type, stream_id, stream_version, type, payload)
            values (${randomUUID()}, (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 20000)::text::xid8,
                    'counter', 'restored', 1, 'Ticked', '{"n": 1}')`.execute(t.db);
});
afterAll(() => t?.drop());

describe('a log restored into another cluster', () => {
  it('startPostbox refuses to start, names the problem, and the procedure it gives lets it start', async () => {
    const refused = await startPostbox({
      pool: t.pool,
      consumers: [effectsConsumer({ name: 'after-restore' })],
    }).catch((error: unknown) => error as Error);
    expect(refused).toBeInstanceOf(LogOrderError);
    const procedure = (refused as Error).message.match(/`(do \$\$ .* end \$\$)`/)?.[1];
    expect(procedure).toBeDefined();
    await t.pool.query(procedure as string);
    const postbox = await startPostbox({
      pool: t.pool,
      consumers: [effectsConsumer({ name: 'after-restore' })],
    });
    await postbox.stop();
  }, 120_000);
});
