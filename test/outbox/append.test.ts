import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConcurrencyError, ValidationError } from '../../src/engine/errors.ts';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { defineEvent } from '../../src/engine/outbox/event.ts';
import { createEventRegistry, readStream, toRecordedEvent } from '../../src/engine/outbox/read.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

const ItemAdded = defineEvent({
  type: 'ItemAdded',
  streamType: 'cart',
  schema: z.object({ sku: z.string().min(1), quantity: z.number().int().positive() }),
});

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
  await sql`create table carts (id text primary key, items int not null default 0)`.execute(t.db);
});
afterAll(() => t.drop());

const countEvents = async (streamId: string) =>
  Number(
    (
      await sql<{ n: string }>`select count(*) as n from outbox.events where stream_id = ${streamId}`.execute(
        t.db,
      )
    ).rows[0]?.n,
  );

describe('appendEvents', () => {
  it('commits business rows and events together, and a rollback leaves neither', async () => {
    const committed = randomUUID();
    await t.db.transaction().execute(async (trx) => {
      await sql`insert into carts (id) values (${committed})`.execute(trx);
      await appendEvents(trx, [ItemAdded.create(committed, { sku: 'A', quantity: 1 })]);
    });
    expect(await countEvents(committed)).toBe(1);

    const rolledBack = randomUUID();
    await expect(
      t.db.transaction().execute(async (trx) => {
        await sql`insert into carts (id) values (${rolledBack})`.execute(trx);
        await appendEvents(trx, [ItemAdded.create(rolledBack, { sku: 'A', quantity: 1 })]);
        throw new Error('business rule failed after the append');
      }),
    ).rejects.toThrow('business rule failed');
    expect(await countEvents(rolledBack)).toBe(0);
    const carts = await sql<{ id: string }>`select id from carts where id = ${rolledBack}`.execute(t.db);
    expect(carts.rows).toHaveLength(0);
  });

  it('rejects an invalid payload with a ValidationError naming the field, before anything is written', async () => {
    const id = randomUUID();
    let caught: unknown;
    await t.db
      .transaction()
      .execute(async (trx) => {
        await sql`insert into carts (id) values (${id})`.execute(trx);
        await appendEvents(trx, [ItemAdded.create(id, { sku: 'A', quantity: -2 })]);
      })
      .catch((error: unknown) => {
        caught = error;
      });
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).field).toBe('payload.quantity');
    expect((caught as ValidationError).code).toBe('VALIDATION_FAILED');
    const carts = await sql<{ id: string }>`select id from carts where id = ${id}`.execute(t.db);
    expect(carts.rows).toHaveLength(0);
    expect(await countEvents(id)).toBe(0);
  });

  it('assigns contiguous versions to concurrent writers of one stream', async () => {
    const stream = randomUUID();
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        t.db.transaction().execute(async (trx) => {
          await appendEvents(trx, [
            ItemAdded.create(stream, { sku: `S${i}`, quantity: 1 }),
            ItemAdded.create(stream, { sku: `S${i}`, quantity: 2 }),
          ]);
        }),
      ),
    );
    const rows = await readStream(t.db, 'cart', stream);
    expect(rows.map((row) => row.stream_version)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    // The two events of one append are adjacent: no writer interleaved inside another's append.
    for (let i = 0; i < rows.length; i += 2) {
      expect(rows[i]?.payload).toMatchObject({ quantity: 1 });
      expect(rows[i + 1]?.payload).toMatchObject({
        quantity: 2,
        sku: (rows[i]?.payload as { sku: string } | undefined)?.sku,
      });
    }
  });

  it('enforces expectedVersion: a stale writer gets a ConcurrencyError and writes nothing', async () => {
    const stream = randomUUID();
    await t.db
      .transaction()
      .execute((trx) =>
        appendEvents(trx, [ItemAdded.create(stream, { sku: 'A', quantity: 1 })], { expectedVersion: 0 }),
      );
    await t.db
      .transaction()
      .execute((trx) =>
        appendEvents(trx, [ItemAdded.create(stream, { sku: 'B', quantity: 1 })], { expectedVersion: 1 }),
      );
    const stale = t.db
      .transaction()
      .execute((trx) =>
        appendEvents(trx, [ItemAdded.create(stream, { sku: 'C', quantity: 1 })], { expectedVersion: 1 }),
      );
    await expect(stale).rejects.toBeInstanceOf(ConcurrencyError);
    await expect(stale).rejects.toMatchObject({ expectedVersion: 1, actualVersion: 2 });
    const exists = t.db
      .transaction()
      .execute((trx) =>
        appendEvents(trx, [ItemAdded.create(stream, { sku: 'D', quantity: 1 })], { expectedVersion: 0 }),
      );
    await expect(exists).rejects.toBeInstanceOf(ConcurrencyError);
    const missing = t.db.transaction().execute((trx) =>
      appendEvents(trx, [ItemAdded.create(randomUUID(), { sku: 'E', quantity: 1 })], {
        expectedVersion: 3,
      }),
    );
    await expect(missing).rejects.toBeInstanceOf(ConcurrencyError);
    expect(await countEvents(stream)).toBe(2);
  });

  it('two writers racing with the same expectedVersion: exactly one wins', async () => {
    const stream = randomUUID();
    await t.db
      .transaction()
      .execute((trx) => appendEvents(trx, [ItemAdded.create(stream, { sku: 'A', quantity: 1 })]));
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        t.db.transaction().execute((trx) =>
          appendEvents(trx, [ItemAdded.create(stream, { sku: `W${i}`, quantity: 1 })], {
            expectedVersion: 1,
          }),
        ),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected')) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ConcurrencyError);
    }
    expect(await countEvents(stream)).toBe(2);
  });

  it('treats a repeated event id as an idempotent no-op, not a second event', async () => {
    const stream = randomUUID();
    const id = randomUUID();
    const first = await t.db
      .transaction()
      .execute((trx) => appendEvents(trx, [ItemAdded.create(stream, { sku: 'A', quantity: 1 }, { id })]));
    expect(first.events).toHaveLength(1);
    const again = await t.db
      .transaction()
      .execute((trx) => appendEvents(trx, [ItemAdded.create(stream, { sku: 'A', quantity: 1 }, { id })]));
    expect(again.events).toHaveLength(0);
    expect(again.duplicateIds).toEqual([id]);
    expect(await countEvents(stream)).toBe(1);
    const rows = await readStream(t.db, 'cart', stream);
    expect(rows.map((row) => row.stream_version)).toEqual([1]);
  });

  it('refuses appends outside a transaction and several streams with one expectedVersion', async () => {
    await expect(
      appendEvents(t.db, [ItemAdded.create('x', { sku: 'A', quantity: 1 })]),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(
      t.db
        .transaction()
        .execute((trx) =>
          appendEvents(
            trx,
            [
              ItemAdded.create('a', { sku: 'A', quantity: 1 }),
              ItemAdded.create('b', { sku: 'A', quantity: 1 }),
            ],
            { expectedVersion: 0 },
          ),
        ),
    ).rejects.toBeInstanceOf(ValidationError);
  });

  it('rejects bad stream ids and event ids and oversized payloads', () => {
    expect(() => ItemAdded.create('', { sku: 'A', quantity: 1 })).toThrow(ValidationError);
    expect(() => ItemAdded.create('x', { sku: 'A', quantity: 1 }, { id: 'not-a-uuid' })).toThrow(
      ValidationError,
    );
    const Big = defineEvent({ type: 'Big', streamType: 'blob', schema: z.object({ data: z.string() }) });
    expect(() => Big.create('x', { data: 'x'.repeat(1024 * 1024 + 1) })).toThrow(/limit/);
  });

  it('the log is append-only: updates, deletes and truncates are refused', async () => {
    const stream = randomUUID();
    await t.db
      .transaction()
      .execute((trx) => appendEvents(trx, [ItemAdded.create(stream, { sku: 'A', quantity: 1 })]));
    await expect(
      sql`update outbox.events set type = 'X' where stream_id = ${stream}`.execute(t.db),
    ).rejects.toThrow(/append-only/);
    await expect(sql`delete from outbox.events where stream_id = ${stream}`.execute(t.db)).rejects.toThrow(
      /append-only/,
    );
    await expect(sql`truncate outbox.events cascade`.execute(t.db)).rejects.toThrow(/append-only/);
    expect(await countEvents(stream)).toBe(1);
  });
});

describe('schema versions', () => {
  const V1 = defineEvent({
    type: 'PriceSet',
    streamType: 'product',
    schema: z.object({ price: z.number() }),
  });
  const V2 = defineEvent({
    type: 'PriceSet',
    streamType: 'product',
    schemaVersion: 2,
    schema: z.object({ priceCents: z.number().int(), currency: z.string() }),
    upcasters: {
      1: (old: { price: number }) => ({ priceCents: Math.round(old.price * 100), currency: 'EUR' }),
    },
  });

  it('stores the version it was written with and upcasts old payloads on read', async () => {
    const stream = randomUUID();
    await t.db.transaction().execute((trx) => appendEvents(trx, [V1.create(stream, { price: 12.5 })]));
    await t.db
      .transaction()
      .execute((trx) => appendEvents(trx, [V2.create(stream, { priceCents: 999, currency: 'USD' })]));
    const rows = await readStream(t.db, 'product', stream);
    expect(rows.map((row) => row.schema_version)).toEqual([1, 2]);
    const registry = createEventRegistry([V2]);
    const events = rows.map((row) => toRecordedEvent(row, registry));
    expect(events.map((event) => event.payload)).toEqual([
      { priceCents: 1250, currency: 'EUR' },
      { priceCents: 999, currency: 'USD' },
    ]);
    expect(events.every((event) => event.schemaVersion === 2)).toBe(true);
  });

  it('requires an upcaster for every older version', () => {
    expect(() =>
      defineEvent({
        type: 'NoUp',
        streamType: 'x',
        schemaVersion: 3,
        schema: z.object({}),
        upcasters: { 1: (p: object) => p },
      }),
    ).toThrow(/upcaster from version 2/);
  });
});
