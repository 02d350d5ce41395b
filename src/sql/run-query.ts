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
 * Runs a query file with its variables bound as parameters (see {@link bindVariables}) on `client`, as is:
 * `postbox sql` runs it inside a read-only transaction.
 *
 * @throws SqlQueryError for a missing or unknown variable; Postgres' errors as they come.
 */
export async function runQuery(
  client: pg.ClientBase,
  query: Pick<SqlQuery, 'sql'>,
  variables: Readonly<Record<string, string>>,
): Promise<QueryResult> {
  const statement = bindVariables(query.sql, variables);
  const result = await client.query<unknown[]>({
    text: statement.text,
    values: [...statement.values],
    rowMode: 'array',
    types: asText,
  });
  return {
    columns: result.fields.map((field) => ({ name: field.name, typeId: field.dataTypeID })),
    rows: result.rows as Array<Array<string | null>>,
  };
}
