import { fileURLToPath } from 'node:url';
import type { MigrationLine } from '../engine/index.ts';
import { SHOP_MIGRATIONS } from '../shop/shop.migrations.ts';

/** The service's own line (schema `postbox`: API keys). */
export const SERVICE_MIGRATIONS: MigrationLine = Object.freeze({
  name: 'service',
  dir: fileURLToPath(new URL('../../migrations/service/', import.meta.url)),
  // Postbox 0.1 applied the API keys table as its 000004.
  adopts: [
    {
      legacyId: 4,
      legacyChecksum: 'ca39ec35dad50eb2cf48b3359a9a08e761bfcc06767a9480ec94028986e5d703',
      files: ['000001_api_keys.sql'],
    },
  ],
});

/** What `postbox migrate` applies after the engine's line: the service's, then the shop's. */
export const SERVICE_LINES: readonly MigrationLine[] = [SERVICE_MIGRATIONS, SHOP_MIGRATIONS];
