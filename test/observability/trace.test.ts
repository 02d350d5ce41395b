import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { type Postbox, startPostbox } from '../../src/engine/postbox.ts';
import { createEffectsTable, effectsConsumer, Ticked } from '../fixtures/effects.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

let t: TestDatabase;
let postbox: Postbox;
beforeAll(async () => {
  t = await createTestDatabase();
  await createEffectsTable(t.db as never);
  postbox = await startPostbox({
    pool: t.pool,
    connectionString: t.url,
    pollIntervalMs: 100,
    consumers: [effectsConsumer({ name: 'echoer', echo: true })],
  });
});
afterAll(async () => {
  await postbox?.stop();
  await t?.drop();
});

const echoOf = (id: string) =>
  waitFor('echo', async () => {
    const { rows } = await sql<{ metadata: Record<string, string> }>`
      select metadata from outbox.events where type = 'Echoed' and stream_id = ${id}`.execute(t.db);
    return rows[0]?.metadata;
  });

describe('trace context through the log', () => {
  it("continues the writer's traceparent into the handler and the events it appends", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const traceparent = `00-${traceId}-00f067aa0ba902b7-01`;
    const event = Ticked.create(
      randomUUID(),
      { n: 1 },
      { metadata: { traceparent, correlationId: 'corr-1' } },
    );
    await t.db.transaction().execute((trx) => appendEvents(trx, [event]));
    const metadata = await echoOf(event.id);
    expect(metadata.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(metadata).toMatchObject({
      correlationId: 'corr-1',
      causationId: event.id,
      actor: 'consumer:echoer',
    });
  });

  it('adds no traceparent when the writer had none, and ignores a malformed one', async () => {
    const plain = Ticked.create(randomUUID(), { n: 2 });
    const bad = Ticked.create(randomUUID(), { n: 3 }, { metadata: { traceparent: 'not-a-traceparent' } });
    await t.db.transaction().execute((trx) => appendEvents(trx, [plain, bad]));
    expect((await echoOf(plain.id)).traceparent).toBeUndefined();
    expect((await echoOf(bad.id)).traceparent).toBeUndefined();
  });
});
