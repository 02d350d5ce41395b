import { Kysely, PostgresDialect } from 'kysely';
import type pg from 'pg';
import type { OutboxTables } from '../outbox/outbox.tables.ts';
import type { ShopTables } from '../shop/shop.tables.ts';
import { PreparingPool } from './prepared.ts';

/**
 * Every table Postbox's TypeScript code touches, keyed `schema.table` as Kysely expects. Feature modules
 * own their table types; this is where they are combined.
 */
export type Database = OutboxTables & ShopTables;

/** A Kysely instance over the whole database. */
export type Db = Kysely<Database>;

/**
 * Builds the Kysely instance on an existing pool (the pool's lifecycle stays with the caller). Statements
 * that start with `PREPARE` (`prepared.ts`) run as named prepared statements.
 */
export function createDb(pool: pg.Pool): Db {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: new PreparingPool(pool) }) });
}
