import { Kysely, PostgresDialect } from 'kysely';
import type pg from 'pg';
import type { OutboxTables } from '../outbox/outbox.tables.ts';
import { PreparingPool } from './prepared.ts';

/**
 * The engine's tables (schema `outbox`), keyed `schema.table` as Kysely expects. An application adds them
 * to its own `Database` type when it queries the log with Kysely: `type DB = AppTables & OutboxDatabase`.
 */
export type OutboxDatabase = OutboxTables;

/** A Kysely instance over the engine's tables: what the engine itself runs its queries on. */
export type EngineDb = Kysely<OutboxDatabase>;

/**
 * Builds a Kysely instance on an existing pool (the pool's lifecycle stays with the caller). Statements
 * that start with `PREPARE` (`prepared.ts`) run as named prepared statements.
 *
 * @typeParam DB - the tables the instance is typed for; default the engine's own.
 */
export function createDb<DB = OutboxDatabase>(pool: pg.Pool): Kysely<DB> {
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool: new PreparingPool(pool) }) });
}

/**
 * The application's Kysely instance (or transaction), typed for the engine's tables. Kysely's table types
 * exist only at compile time, so this is the same object: the engine's admin and read functions accept any
 * application's `Kysely<DB>` without asking it to include the engine's tables in `DB`.
 */
export function engineView<DB>(db: Kysely<DB>): EngineDb {
  return db as unknown as EngineDb;
}
