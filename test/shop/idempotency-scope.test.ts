import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/auth/api-keys.ts';
import type { GraphqlApi } from '../../src/graphql/yoga.ts';
import { addProduct } from '../../src/shop/product.service.ts';
import { createTestApi, gql, PLACE_ORDER } from '../graphql/graphql-fixtures.ts';
import { bearer } from '../hardening/hardening-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { count } from './shop-fixtures.ts';

let database: TestDatabase;
let api: GraphqlApi;

beforeAll(async () => {
  database = await createTestDatabase();
  await addProduct(database.db, { sku: 'I-KEYB', name: 'Keyboard', priceCents: 100, stock: 100 });
  api = createTestApi(database.db, database.url, { auth: { enabled: true } });
});

afterAll(async () => {
  await api?.close();
  await database?.drop();
});

type Placed = { placeOrder: { __typename: string; order?: { id: string } } };

describe('idempotency keys belong to their caller', () => {
  it("a second key sending the same idempotency key gets its own order, never the first key's", async () => {
    const alice = await createApiKey(database.db, { name: 'alice', scopes: ['orders:write'] });
    const mallory = await createApiKey(database.db, { name: 'mallory', scopes: ['orders:write'] });
    const input = {
      customerId: 'ada',
      idempotencyKey: 'checkout-1',
      lines: [{ sku: 'I-KEYB', quantity: 1 }],
    };

    const first = await gql<Placed>(api, PLACE_ORDER, { input }, bearer(alice.key));
    const again = await gql<Placed>(api, PLACE_ORDER, { input }, bearer(alice.key));
    const other = await gql<Placed>(api, PLACE_ORDER, { input }, bearer(mallory.key));

    const firstId = first.body.data?.placeOrder.order?.id;
    expect(firstId).toEqual(expect.any(String));
    expect(again.body.data?.placeOrder.order?.id).toBe(firstId);
    expect(other.body.data?.placeOrder.__typename).toBe('PlaceOrderSuccess');
    expect(other.body.data?.placeOrder.order?.id).not.toBe(firstId);
    expect(await count(database.db, 'shop.orders')).toBe(2);
  });
});
