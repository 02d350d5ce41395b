import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findVariableReferences, SqlQueryError } from './psql-variables.ts';

/** The repository's `sql/` directory: the queries `postbox sql` knows. */
export const queriesDir = fileURLToPath(new URL('../../sql/', import.meta.url));

/** One documented variable of a query (`--   :'name'  description` in its header). */
export interface QueryParameter {
  readonly name: string;
  readonly description: string;
}

/** A query file of `sql/`, with what its header comment says. */
export interface SqlQuery {
  /** The file name without `.sql`, e.g. `stream_history`: what `postbox sql <name>` takes. */
  readonly name: string;
  readonly file: string;
  /** The header's first line: what the query answers, in one sentence. */
  readonly title: string;
  /** The header's paragraph under the title. */
  readonly description: string;
  /** Its psql variables, in the order the header lists them. All are required. */
  readonly parameters: readonly QueryParameter[];
  /** The header's example command lines. */
  readonly examples: readonly string[];
  /** The whole file, as psql reads it. */
  readonly sql: string;
}

/**
 * Reads every `*.sql` file of `dir` (default {@link queriesDir}), sorted by name.
 *
 * @throws SqlQueryError when a file's header is malformed or does not document exactly the variables the
 *   file uses (see {@link parseQueryFile}).
 */
export async function readQueryCatalogue(dir: string = queriesDir): Promise<SqlQuery[]> {
  const files = (await fs.readdir(dir)).filter((file) => file.endsWith('.sql')).sort();
  return Promise.all(
    files.map(async (file) => {
      const full = path.join(dir, file);
      return parseQueryFile(full, await fs.readFile(full, 'utf8'));
    }),
  );
}

/** The query called `name` (the file name, with or without `.sql`; `-` and `_` are interchangeable). */
export async function findQuery(name: string, dir: string = queriesDir): Promise<SqlQuery> {
  const wanted = name.replace(/\.sql$/, '').replaceAll('-', '_');
  const catalogue = await readQueryCatalogue(dir);
  const query = catalogue.find((candidate) => candidate.name === wanted);
  if (!query) {
    throw new SqlQueryError(
      `no query named ${name} in ${dir}; there are: ${catalogue.map((entry) => entry.name).join(', ')}`,
    );
  }
  return query;
}

/**
 * Parses a query file. Its header is the leading `--` comment block:
 *
 * ```
 * -- <title: what it answers, one line>
 * --
 * -- <description, any number of lines>
 * --
 * -- Parameters:            (or "Parameters: none")
 * --   :'name'  description
 * --
 * -- Example:
 * --   psql "$DATABASE_URL" -v name=value -f sql/<file>.sql
 * ```
 *
 * @throws SqlQueryError when the title or the parameter section is missing, or the documented parameters
 *   differ from the `:'name'` references of the file.
 */
export function parseQueryFile(file: string, sql: string): SqlQuery {
  const name = path.basename(file, '.sql');
  const header: string[] = [];
  for (const line of sql.split('\n')) {
    if (!line.startsWith('--')) break;
    header.push(line.replace(/^--\s?/, '').trimEnd());
  }
  const fail = (problem: string): never => {
    throw new SqlQueryError(`${file}: ${problem}`);
  };
  const title =
    header[0]?.trim() || fail('no header comment: the first line must say what the query answers');

  const sections = new Map<string, string[]>([['description', []]]);
  let current = 'description';
  for (const line of header.slice(1)) {
    const section = /^(Parameters|Example|Examples):\s*(.*)$/.exec(line);
    if (section) {
      current = (section[1] as string).toLowerCase().replace(/s$/, '');
      sections.set(current, section[2] ? [section[2]] : []);
    } else sections.get(current)?.push(line);
  }
  const parameterLines = sections.get('parameter') ?? fail('the header has no "Parameters:" line');
  const parameters: QueryParameter[] = [];
  for (const line of parameterLines) {
    const match = /^\s*:'([A-Za-z_][A-Za-z0-9_]*)'\s+(.*)$/.exec(line);
    if (match) parameters.push({ name: match[1] as string, description: (match[2] as string).trim() });
  }

  const used = new Set(findVariableReferences(sql).map((reference) => reference.name));
  const documented = new Set(parameters.map((parameter) => parameter.name));
  const undocumented = [...used].filter((variable) => !documented.has(variable));
  const unused = [...documented].filter((variable) => !used.has(variable));
  if (undocumented.length > 0) fail(`variables used but not under "Parameters:": ${undocumented.join(', ')}`);
  if (unused.length > 0) fail(`parameters documented but not used: ${unused.join(', ')}`);

  return {
    name,
    file,
    title,
    description: paragraph(sections.get('description') ?? []),
    parameters,
    examples: (sections.get('example') ?? []).map((line) => line.trim()).filter(Boolean),
    sql,
  };
}

function paragraph(lines: readonly string[]): string {
  return lines
    .join('\n')
    .trim()
    .split(/\n\s*\n/)
    .map((part) => part.replace(/\s*\n\s*/g, ' '))
    .join('\n');
}
