import { type Kysely, type Selectable, sql } from 'kysely';
import { ValidationError } from '../engine/index.ts';
import type { ProductsTable, ShopDatabase } from './shop.tables.ts';

/** A product row. */
export type Product = Selectable<ProductsTable>;

/** Products by SKU (no lock: a price snapshot for an order). Missing SKUs are absent from the map. */
export async function findProducts(
  db: Kysely<ShopDatabase>,
  skus: readonly string[],
): Promise<Map<string, Product>> {
  if (skus.length === 0) return new Map();
  const rows = await db
    .selectFrom('shop.products')
    .selectAll()
    .where('sku', 'in', [...skus])
    .execute();
  return new Map(rows.map((row) => [row.sku, row]));
}

/** The whole catalogue, by SKU. */
export async function listProducts(db: Kysely<ShopDatabase>): Promise<Product[]> {
  return db.selectFrom('shop.products').selectAll().orderBy('sku').execute();
}

/**
 * Locks products for a stock change, in SKU order (a fixed order keeps two writers from deadlocking).
 * `for no key update`: it does not block the key-share locks that inserting order lines (a foreign key to the
 * product) takes, so placing orders never waits for the inventory handler.
 */
export async function lockProducts(
  trx: Kysely<ShopDatabase>,
  skus: readonly string[],
): Promise<Map<string, Product>> {
  if (skus.length === 0) return new Map();
  const rows = await trx
    .selectFrom('shop.products')
    .selectAll()
    .where('sku', 'in', [...new Set(skus)])
    .orderBy('sku')
    .forNoKeyUpdate()
    .execute();
  return new Map(rows.map((row) => [row.sku, row]));
}

/** Inserts a product; an existing SKU is a {@link ValidationError} on `sku`. */
export async function insertProduct(
  trx: Kysely<ShopDatabase>,
  product: Pick<Product, 'sku' | 'name' | 'price_cents' | 'stock'>,
): Promise<Product> {
  const row = await trx
    .insertInto('shop.products')
    .values({ ...product, updated_at: new Date() })
    .onConflict((conflict) => conflict.column('sku').doNothing())
    .returningAll()
    .executeTakeFirst();
  if (!row) throw new ValidationError(`A product with SKU ${product.sku} already exists`, 'sku');
  return row;
}

/** Adds `delta` (negative to take) to a product's stock; returns the row after. The caller holds its lock. */
export async function adjustStock(trx: Kysely<ShopDatabase>, sku: string, delta: number): Promise<Product> {
  return trx
    .updateTable('shop.products')
    .set((eb) => ({ stock: eb('stock', '+', delta), updated_at: new Date() }))
    .where('sku', '=', sku)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** {@link adjustStock} for several products in one statement: `deltas` by SKU. The caller holds their locks. */
export async function adjustStocks(
  trx: Kysely<ShopDatabase>,
  deltas: ReadonlyMap<string, number>,
): Promise<void> {
  const rows = [...deltas].filter(([, delta]) => delta !== 0).map(([sku, delta]) => ({ sku, delta }));
  if (rows.length === 0) return;
  await sql`
    update shop.products as p
       set stock = p.stock + v.delta, updated_at = ${new Date()}
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as v(sku text, delta int)
     where p.sku = v.sku`.execute(trx);
}
