import type pg from 'pg';
import { bindVariables } from './psql-variables.ts';
import type { SqlQuery } from './query-catalogue.ts';

/** A column of a {@link QueryResult}. */
export interface ResultColumn {
  readonly name: string;
  /** Postgres type OID (`pg_type.oid`), e.g. 20 for bigint. */
  readonly typeId: number;
}

/** What a query returned, every value in Postgres' own text form (as psql prints it), `null` for NULL. */
export interface QueryResult {
  readonly columns: readonly ResultColumn[];
  readonly rows: ReadonlyArray<ReadonlyArray<string | null>>;
}

// Values stay in Postgres' text output: the table and CSV formats then print exactly what psql prints
// (timestamps in the session's time zone, jsonb as Postgres writes it); JSON output converts by type.
const asText = { getTypeParser: () => (value: string) => value };

/**
 * Runs a query file — exactly one statement — with its variables bound as parameters (see
 * {@link bindVariables}) on `client`: `postbox sql` runs it inside a read-only transaction, on a session
 * whose every transaction is read-only (see {@link beginReadOnly}).
 *
 * @throws SqlQueryError for a missing or unknown variable; Postgres' errors as they come.
 */
export async function runQuery(
  client: pg.ClientBase,
  query: Pick<SqlQuery, 'sql'>,
  variables: Readonly<Record<string, string>>,
): Promise<QueryResult> {
  const statement = bindVariables(query.sql, variables);
  // `queryMode` is pg's (since 8.13) but not yet in @types/pg.
  const config: pg.QueryArrayConfig & { queryMode: 'extended' } = {
    text: statement.text,
    values: [...statement.values],
    rowMode: 'array',
    types: asText,
    // The extended protocol parses exactly one statement ("cannot insert multiple commands into a prepared
    // statement"): a file cannot `commit` the read-only transaction and go on writing.
    queryMode: 'extended',
  };
  const result = await client.query<unknown[]>(config);
  return {
    columns: result.fields.map((field) => ({ name: field.name, typeId: field.dataTypeID })),
    rows: result.rows as Array<Array<string | null>>,
  };
}

/**
 * Makes `client`'s session read-only (every later transaction too, so that a statement ending the current
 * one gains nothing) and opens a read-only transaction.
 */
export async function beginReadOnly(client: pg.ClientBase): Promise<void> {
  await client.query('set session characteristics as transaction read only');
  await client.query('begin transaction read only');
}
