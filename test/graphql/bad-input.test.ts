import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCursor } from '../../src/engine/outbox/read.ts';
import type { GraphqlApi } from '../../src/graphql/yoga.ts';
import { addProduct } from '../../src/shop/product.service.ts';
import { captureLogs } from '../hardening/hardening-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { count } from '../shop/shop-fixtures.ts';
import { createTestApi, gql, PLACE_ORDER } from './graphql-fixtures.ts';

let database: TestDatabase;
let api: GraphqlApi;
const logs = captureLogs();

beforeAll(async () => {
  database = await createTestDatabase();
  await addProduct(database.db, { sku: 'B-KEYB', name: 'Keyboard', priceCents: 100, stock: 100 });
  api = createTestApi(database.db, database.url, { logger: logs.logger });
});

afterAll(async () => {
  await api?.close();
  await database?.drop();
});

type Body = Awaited<ReturnType<typeof gql>>['body'];

/** The request was refused as bad input naming `field`, not masked as "Unexpected error.". */
function expectBadInput(body: Body, field: RegExp): void {
  const error = body.errors?.[0];
  expect(error, JSON.stringify(body)).toBeDefined();
  expect(error?.message).not.toBe('Unexpected error.');
  expect(['BAD_USER_INPUT', 'VALIDATION_FAILED']).toContain(error?.extensions?.code);
  expect(`${error?.message} ${String(error?.extensions?.field ?? '')}`).toMatch(field);
}

const order = (customerId: string, idempotencyKey = `bad-${Math.random()}`) => ({
  input: { customerId, idempotencyKey, lines: [{ sku: 'B-KEYB', quantity: 1 }] },
});

describe('bad input is a validation error naming the field', () => {
  it('a NUL byte in a variable or a literal writes nothing', async () => {
    const before = [await count(database.db, 'shop.orders'), await count(database.db, 'outbox.events')];
    expectBadInput((await gql(api, PLACE_ORDER, order('ada\u0000'))).body, /customerId/);
    expectBadInput(
      (
        await gql(
          api,
          'mutation { addProduct(input: { sku: "NUL-1", name: "a\\u0000b", priceCents: 1, stock: 1 }) { __typename } }',
        )
      ).body,
      /name/,
    );
    expectBadInput(
      (await gql(api, '{ events(filter: { streamId: "x\\u0000" }) { edges { cursor } } }')).body,
      /streamId/,
    );
    expect([await count(database.db, 'shop.orders'), await count(database.db, 'outbox.events')]).toEqual(
      before,
    );
  });

  it('a lone surrogate is bad input, not a database error', async () => {
    expectBadInput((await gql(api, PLACE_ORDER, order('ada\uD800'))).body, /customerId/);
    expect(await count(database.db, 'shop.orders')).toBe(0);
  });

  it('cursors beyond the int8 range', async () => {
    const huge = encodeCursor({ logXid: '99999999999999999999', position: '99999999999999999999' });
    expectBadInput(
      (await gql(api, '{ events(after: $a) { edges { cursor } } }'.replace('$a', `"${huge}"`))).body,
      /after/,
    );
    const orderCursor = Buffer.from('order:v1:9999999999999999999').toString('base64url');
    expectBadInput(
      (await gql(api, 'query($a: String) { orders(after: $a) { edges { cursor } } }', { a: orderCursor }))
        .body,
      /after/,
    );
  });

  it('a bad DateTime variable keeps its helpful message; 2026-02-30 is not 2 March', async () => {
    const query = 'query($from: DateTime) { events(filter: { from: $from }) { edges { cursor } } }';
    expectBadInput((await gql(api, query, { from: 'yesterday' })).body, /DateTime|from/);
    expectBadInput((await gql(api, query, { from: '2026-02-30T00:00:00Z' })).body, /DateTime|from/);
    expectBadInput(
      (await gql(api, '{ events(filter: { from: "2026-02-30T00:00:00Z" }) { edges { cursor } } }')).body,
      /DateTime|from/,
    );
    const fine = await gql(api, query, { from: '2024-02-29T00:00:00Z' });
    expect(fine.body.errors).toBeUndefined();
  });

  it('none of it is logged at error level', () => {
    const errors = logs.lines().filter((line) => (line.level as number) >= 50);
    expect(errors.map((line) => JSON.stringify(line).slice(0, 400))).toEqual([]);
  });
});
