import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerConsumers } from '../../src/engine/consumers/register.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { childEnv, cliEntry, runNode } from '../foundation/processes.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
  await registerConsumers(t.db, [effectsConsumer({ name: 'ledger', partitions: 2 })]);
  await t.db.transaction().execute((trx) => appendEvents(trx, [Ticked.create(randomUUID(), { n: 1 })]));
});
afterAll(() => t?.drop());

const postbox = (...args: string[]) =>
  runNode([cliEntry, ...args], childEnv({ DATABASE_URL: t.url, LOG_LEVEL: 'error' }));

describe('postbox consumers / dead-letters', () => {
  it('lists consumers with their lag, pauses and resumes, replays, and lists and redrives dead letters', async () => {
    const list = await postbox('consumers', 'list', '--json');
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual([
      expect.objectContaining({ name: 'ledger', lag: 1, partitions: 2, status: 'active' }),
    ]);

    expect((await postbox('consumers', 'pause', 'ledger')).code).toBe(0);
    // The same table style as `postbox sql` (psql's aligned format): | separators, numbers right-aligned, a footer.
    const table = (await postbox('consumers')).stdout;
    expect(table).toMatch(/^ consumer +\| status +\| partitions \|/m);
    expect(table).toMatch(/^ ledger +\| paused +\| +2 \| +1 \|/m);
    expect(table).toMatch(/^\(\d+ rows?\)$/m);
    expect((await postbox('consumers', 'resume', 'ledger')).code).toBe(0);

    const missing = await postbox('consumers', 'pause', 'nobody');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('No consumer named nobody');

    expect((await postbox('consumers', 'replay', 'ledger', '--after', '0')).stdout).toContain(
      'ledger rewound',
    );

    const { rows } = await sql<{ position: string; id: string }>`
      select position::text, id from outbox.events limit 1`.execute(t.db);
    const event = rows[0] as { position: string; id: string };
    await sql`insert into outbox.dead_letters (consumer, partition, event_position, event_id, stream_type, stream_id,
                stream_version, event_type, attempts, last_error, first_failed_at)
              select 'ledger', 0, position, id, stream_type, stream_id, stream_version, type, 8, 'boom: card declined', now()
              from outbox.events where position = ${event.position}`.execute(t.db);
    const dead = await postbox('dead-letters', 'list', 'ledger');
    expect(dead.stdout).toContain('boom: card declined');
    expect(dead.stdout).toMatch(/^\(1 row\)$/m);
    const redrive = await postbox('dead-letters', 'redrive', 'ledger');
    expect(redrive.stdout).toContain('1 dead letter(s) queued for redrive');
    const { rows: requested } = await sql<{ n: string }>`select count(*)::text as n from outbox.dead_letters
      where redrive_requested_at is not null`.execute(t.db);
    expect(requested[0]?.n).toBe('1');
  });
});
