import type { Kysely } from 'kysely';
import type { ShopDatabase } from '../shop/shop.tables.ts';

/**
 * The tables the service queries with Kysely's builder: the shop's (its reference app). The log and the
 * service's own tables are reached through the engine's API or raw SQL, which take any Kysely instance.
 */
export type Database = ShopDatabase;

/** A Kysely instance over the service's database. */
export type Db = Kysely<Database>;
