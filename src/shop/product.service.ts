import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { EventMetadata } from '../engine/index.ts';
import { appendEvents, NotFoundError, ValidationError } from '../engine/index.ts';
import { adjustStock, insertProduct, lockProducts, type Product } from './product.repository.ts';
import { ProductAdded, ProductRestocked } from './shop.events.ts';
import type { ShopDatabase } from './shop.tables.ts';
import { inTransaction, parseInput } from './transaction.ts';

/** Largest price accepted, in cents (1,000,000.00). */
export const MAX_PRICE_CENTS = 100_000_000;
/** Largest stock level a product may reach. */
export const MAX_STOCK = 1_000_000_000;

const skuSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/,
    'sku must be 1 to 64 letters, digits, "_", "." or "-", starting with a letter or digit',
  );

const addProductSchema = z.object({
  sku: skuSchema,
  name: z.string().trim().min(1, 'name must not be empty').max(200, 'name must be at most 200 characters'),
  priceCents: z
    .number()
    .int('priceCents must be a whole number of cents')
    .min(0, 'priceCents must not be negative')
    .max(MAX_PRICE_CENTS, `priceCents must be at most ${MAX_PRICE_CENTS}`),
  stock: z
    .number()
    .int('stock must be a whole number')
    .min(0, 'stock must not be negative')
    .max(MAX_STOCK, `stock must be at most ${MAX_STOCK}`),
});

/** Input of {@link addProduct}. */
export type AddProductInput = z.input<typeof addProductSchema>;

/**
 * Adds a product to the catalogue (`ProductAdded` on stream `product/<sku>`).
 *
 * @throws ValidationError bad input, or the SKU exists.
 */
export async function addProduct(
  db: Kysely<ShopDatabase>,
  input: AddProductInput,
  metadata: EventMetadata = {},
): Promise<Product> {
  const valid = parseInput(addProductSchema, input);
  return inTransaction(db, async (trx) => {
    const product = await insertProduct(trx, {
      sku: valid.sku,
      name: valid.name,
      price_cents: valid.priceCents,
      stock: valid.stock,
    });
    await appendEvents(
      trx,
      [
        ProductAdded.create(valid.sku, {
          sku: valid.sku,
          name: valid.name,
          priceCents: valid.priceCents,
          stock: valid.stock,
        }),
      ],
      { expectedVersion: 0, metadata },
    );
    return product;
  });
}

const restockSchema = z.object({
  sku: z.string().min(1, 'sku must not be empty').max(64, 'sku must be at most 64 characters'),
  quantity: z
    .number()
    .int('quantity must be a whole number')
    .min(1, 'quantity must be at least 1')
    .max(MAX_STOCK, `quantity must be at most ${MAX_STOCK}`),
});

/**
 * Adds stock to a product (`ProductRestocked`, carrying the new level).
 *
 * @throws ValidationError bad input or the stock would exceed {@link MAX_STOCK}.
 * @throws NotFoundError no such SKU.
 */
export async function restockProduct(
  db: Kysely<ShopDatabase>,
  input: { sku: string; quantity: number },
  metadata: EventMetadata = {},
): Promise<Product> {
  const valid = parseInput(restockSchema, input);
  return inTransaction(db, async (trx) => {
    const current = (await lockProducts(trx, [valid.sku])).get(valid.sku);
    if (!current) throw new NotFoundError(`No product with SKU ${valid.sku}`);
    if (current.stock + valid.quantity > MAX_STOCK) {
      throw new ValidationError(`quantity: the stock of ${valid.sku} would exceed ${MAX_STOCK}`, 'quantity');
    }
    const product = await adjustStock(trx, valid.sku, valid.quantity);
    await appendEvents(
      trx,
      [
        ProductRestocked.create(valid.sku, {
          sku: valid.sku,
          quantity: valid.quantity,
          stock: product.stock,
        }),
      ],
      { metadata },
    );
    return product;
  });
}
