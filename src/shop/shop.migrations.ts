import { fileURLToPath } from 'node:url';
import type { MigrationLine } from '../engine/index.ts';

/** The shop's migration line (schema `shop`), applied after the engine's by `postbox migrate`. */
export const SHOP_MIGRATIONS: MigrationLine = Object.freeze({
  name: 'shop',
  dir: fileURLToPath(new URL('../../migrations/shop/', import.meta.url)),
  // Postbox 0.1 applied the shop's tables as its 000003 and the order timeline within its 000005.
  adopts: [
    {
      legacyId: 3,
      legacyChecksum: '44add5ce41dab9d07a732bf8b1119c17c83acd95896f02e1473ba34603980d9b',
      files: ['000001_shop.sql'],
    },
    {
      legacyId: 5,
      legacyChecksum: '53df92af7b4f29971946f8294fc110d62c5e64c063cd43ef4363611299614b7b',
      files: ['000002_order_timeline.sql'],
    },
  ],
});
