import path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '../config/config.ts';
import { openDatabase } from '../db/connect.ts';
import { createLogger } from '../logger.ts';
import { formatResult, RESULT_FORMATS, type ResultFormat } from '../sql/format-result.ts';
import { SqlQueryError } from '../sql/psql-variables.ts';
import { findQuery, queriesDir, readQueryCatalogue, type SqlQuery } from '../sql/query-catalogue.ts';
import { beginReadOnly, runQuery } from '../sql/run-query.ts';

/** Options of `postbox sql`, as commander parses them. */
interface SqlCommandOptions {
  readonly var?: Record<string, string>;
  readonly format: ResultFormat;
  readonly dir?: string;
}

/**
 * `postbox sql` lists the queries of `sql/` with what they answer; `postbox sql <name> --var key=value …
 * [--format table|json|csv]` runs one against `DATABASE_URL` (or the embedded database) in a read-only
 * transaction, its variables bound as parameters. It does not migrate, so it also works with a
 * `postbox_reader` login.
 */
export function registerSqlCommand(program: Command): void {
  program
    .command('sql [name]')
    .description('list the SQL queries over the event log (sql/), or run one with bound variables')
    .option('-v, --var <key=value>', "set a query variable (psql's -v); repeat for each", collectVariable)
    .option('--format <format>', `output format: ${RESULT_FORMATS.join(', ')}`, parseFormat, 'table')
    .option('--dir <dir>', 'directory of the query files (default: the sql/ of this package)')
    .action(async (name: string | undefined, options: SqlCommandOptions) => {
      const dir = options.dir ?? queriesDir;
      const variables = options.var ?? {};
      if (name === undefined) {
        process.stdout.write(renderCatalogue(await readQueryCatalogue(dir), dir));
        return;
      }
      const query = await findQuery(name, dir);
      const missing = query.parameters.filter((parameter) => !Object.hasOwn(variables, parameter.name));
      if (missing.length > 0) throw new SqlQueryError(describeMissing(query, missing));
      process.stdout.write(await runReadOnly(query, variables, options.format));
    });
}

function collectVariable(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(value);
  if (!match) throw new InvalidArgumentError('expected key=value, e.g. --var stream_id=42');
  return { ...previous, [match[1] as string]: match[2] as string };
}

function parseFormat(value: string): ResultFormat {
  if (!(RESULT_FORMATS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`must be one of ${RESULT_FORMATS.join(', ')}`);
  }
  return value as ResultFormat;
}

async function runReadOnly(
  query: SqlQuery,
  variables: Record<string, string>,
  format: ResultFormat,
): Promise<string> {
  const config = loadConfig();
  const logger = createLogger({ ...config, logLevel: config.logLevel === 'info' ? 'warn' : config.logLevel });
  const database = await openDatabase({ ...config, poolSize: 2 }, logger, { shareRunningEmbedded: true });
  try {
    const client = await database.pool.connect();
    try {
      await beginReadOnly(client);
      return formatResult(await runQuery(client, query, variables), format);
    } catch (error) {
      throw explain(error);
    } finally {
      await client.query('rollback').catch(() => undefined);
      // The session stays read-only: never hand it back to a pool for other work.
      client.release(true);
    }
  } finally {
    await database.close();
  }
}

/** Adds what to do about the usual failures to Postgres' message. */
function explain(error: unknown): unknown {
  const code = (error as { code?: string }).code;
  if (code === '42P01' || code === '3F000') {
    return new Error(`${(error as Error).message} (is the database migrated? run: postbox migrate)`);
  }
  if (code === '42601' && /multiple commands/.test((error as Error).message)) {
    return new Error('postbox sql runs exactly one statement per query file; this file holds several');
  }
  if (code === '42501') {
    return new Error(
      `${(error as Error).message} (this login needs the postbox_reader role: grant postbox_reader to <login>)`,
    );
  }
  return error;
}

function describeMissing(query: SqlQuery, missing: SqlQuery['parameters']): string {
  const lines = [`${query.name} needs ${missing.map((parameter) => `--var ${parameter.name}=…`).join(' ')}`];
  for (const parameter of query.parameters)
    lines.push(`  ${parameter.name.padEnd(16)}${parameter.description}`);
  const example = query.examples.find((line) => line.startsWith('postbox sql'));
  if (example) lines.push(`e.g. ${example}`);
  return lines.join('\n');
}

function renderCatalogue(queries: readonly SqlQuery[], dir: string): string {
  const width = Math.max(...queries.map((query) => query.name.length)) + 2;
  const lines = [
    `Queries in ${path.relative(process.cwd(), dir) || '.'} (each also runs in psql: psql "$DATABASE_URL" -v key=value -f <file>)`,
    'Run one: postbox sql <name> --var key=value … [--format table|json|csv]',
    '',
  ];
  for (const query of queries) {
    lines.push(`${query.name.padEnd(width)}${query.title}`);
    const variables = query.parameters.map((parameter) => `--var ${parameter.name}=…`).join(' ');
    if (variables) lines.push(`${' '.repeat(width)}${variables}`);
  }
  return `${lines.join('\n')}\n`;
}
