import { findProducts, listProducts, type Product } from '../../shop/product.repository.ts';
import { addProduct, restockProduct } from '../../shop/product.service.ts';
import { builder } from '../builder.ts';
import { ERROR_TYPES } from './errors.ts';
import { SCOPES_TO_ADMINISTER, SCOPES_TO_READ_ORDERS } from './scopes.ts';

/** A catalogue product. */
export const ProductRef = builder.objectRef<Product>('Product').implement({
  description: 'A product of the catalogue. Money is in integer cents.',
  fields: (t) => ({
    sku: t.exposeString('sku'),
    name: t.exposeString('name'),
    priceCents: t.exposeInt('price_cents'),
    stock: t.exposeInt('stock', { description: 'Units available; never negative.' }),
    createdAt: t.field({ type: 'DateTime', resolve: (product) => product.created_at }),
    updatedAt: t.field({ type: 'DateTime', resolve: (product) => product.updated_at }),
  }),
});

const AddProductInput = builder.inputType('AddProductInput', {
  fields: (t) => ({
    sku: t.string({
      required: true,
      description: '1–64 of `A-Za-z0-9_.-`, starting with a letter or digit.',
    }),
    name: t.string({ required: true }),
    priceCents: t.int({ required: true, description: '0 to 100000000.' }),
    stock: t.int({ required: true, description: 'Initial stock, 0 or more.' }),
  }),
});

builder.queryFields((t) => ({
  products: t.field({
    type: [ProductRef],
    authScopes: SCOPES_TO_READ_ORDERS,
    description: 'The catalogue, by SKU.',
    resolve: (_root, _args, context) => listProducts(context.db),
  }),
  product: t.field({
    type: ProductRef,
    nullable: true,
    authScopes: SCOPES_TO_READ_ORDERS,
    args: { sku: t.arg.string({ required: true }) },
    resolve: async (_root, args, context) =>
      (await findProducts(context.db, [args.sku])).get(args.sku) ?? null,
  }),
}));

builder.mutationFields((t) => ({
  addProduct: t.field({
    type: ProductRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description: 'Adds a product (event `ProductAdded` on stream `product/<sku>`).',
    args: { input: t.arg({ type: AddProductInput, required: true }) },
    errors: {
      types: [ERROR_TYPES.ValidationError],
      union: { name: 'AddProductResult' },
      result: { name: 'AddProductSuccess' },
      dataField: { name: 'product' },
    },
    resolve: (_root, args, context) => addProduct(context.db, args.input, context.eventMetadata),
  }),
  restockProduct: t.field({
    type: ProductRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description: "Adds `quantity` units to a product's stock (event `ProductRestocked`).",
    args: { sku: t.arg.string({ required: true }), quantity: t.arg.int({ required: true }) },
    errors: {
      types: [ERROR_TYPES.ValidationError, ERROR_TYPES.NotFoundError],
      union: { name: 'RestockProductResult' },
      result: { name: 'RestockProductSuccess' },
      dataField: { name: 'product' },
    },
    resolve: (_root, args, context) =>
      restockProduct(context.db, { sku: args.sku, quantity: args.quantity }, context.eventMetadata),
  }),
}));
