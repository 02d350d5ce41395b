import { PostboxError } from '../engine/index.ts';

/** A query file cannot be run as asked: a variable is missing or unknown, or the file is not bindable. */
export class SqlQueryError extends PostboxError {
  readonly code = 'SQL_QUERY_INVALID';
}

/** A psql variable reference in a SQL text, as psql itself would see it. */
export interface VariableReference {
  readonly name: string;
  /** `literal` is `:'name'` (a quoted string), `identifier` is `:"name"`, `raw` is `:name` (pasted as is). */
  readonly kind: 'literal' | 'identifier' | 'raw';
  /** Offset of the `:`. */
  readonly start: number;
  /** Offset just after the reference. */
  readonly end: number;
  /** 1-based line of the reference, for messages. */
  readonly line: number;
}

/** A statement ready for `pg`: `$1..$n` placeholders and their values, in order. */
export interface BoundStatement {
  readonly text: string;
  readonly values: readonly string[];
}

// psql's variable_char: ASCII letters, digits, underscore and any non-ASCII character.
const variableChar = /[A-Za-z0-9_\u0080-\uffff]/;
const identifierStart = /[A-Za-z_\u0080-\uffff]/;
const identifierChar = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * Finds the psql variable references of a SQL text, skipping what psql skips: `--` and (nested) `/* *\/`
 * comments, '…' and E'…' string literals, "…" identifiers, $tag$…$tag$ bodies, and `::` casts and `:=`.
 * A name starting with a digit (as in an array slice `a[1:2]`) is not taken for a variable.
 *
 * @throws SqlQueryError on a psql meta-command (a backslash outside strings and comments) or an unterminated
 *   string, identifier, comment or dollar-quoted body.
 */
export function findVariableReferences(sql: string): VariableReference[] {
  const references: VariableReference[] = [];
  let i = 0;
  const lineAt = (offset: number) => sql.slice(0, offset).split('\n').length;
  const unterminated = (what: string, from: number): never => {
    throw new SqlQueryError(`unterminated ${what} starting on line ${lineAt(from)}`);
  };
  while (i < sql.length) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end + 1;
    } else if (c === '/' && next === '*') {
      const from = i;
      let depth = 1;
      i += 2;
      while (depth > 0) {
        if (i >= sql.length) unterminated('comment', from);
        if (sql.startsWith('/*', i)) {
          depth++;
          i += 2;
        } else if (sql.startsWith('*/', i)) {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (c === "'") {
      const escapes = /[Ee]/.test(sql[i - 1] ?? '') && !identifierChar.test(sql[i - 2] ?? '');
      i = skipQuoted(sql, i, "'", escapes, () => unterminated('string', i));
    } else if (c === '"') {
      i = skipQuoted(sql, i, '"', false, () => unterminated('quoted identifier', i));
    } else if (c === '$' && !identifierChar.test(sql[i - 1] ?? '')) {
      const tag = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(sql.slice(i))?.[0];
      if (tag) {
        const end = sql.indexOf(tag, i + tag.length);
        if (end === -1) unterminated(`${tag} body`, i);
        i = end + tag.length;
      } else i++;
    } else if (c === '\\') {
      throw new SqlQueryError(
        `line ${lineAt(i)}: psql meta-commands (\\…) are not supported; a query file holds one SQL statement`,
      );
    } else if (c === ':') {
      if (next === ':' || next === '=') {
        i += 2;
        continue;
      }
      const reference = readReference(sql, i);
      if (reference) {
        references.push({ ...reference, start: i, line: lineAt(i) });
        i = reference.end;
      } else i++;
    } else if (identifierStart.test(c)) {
      // Skip a whole word, so that a `$` inside an identifier (allowed in Postgres) is not a dollar quote.
      while (i < sql.length && identifierChar.test(sql[i] as string)) i++;
    } else i++;
  }
  return references;
}

/** Offset just after the literal or identifier opened at `start` (`''`/`""` escape the quote inside). */
function skipQuoted(sql: string, start: number, quote: string, backslashEscapes: boolean, fail: () => never) {
  let i = start + 1;
  for (;;) {
    if (i >= sql.length) fail();
    const c = sql[i];
    if (backslashEscapes && c === '\\') i += 2;
    else if (c === quote && sql[i + 1] === quote) i += 2;
    else if (c === quote) return i + 1;
    else i++;
  }
}

function readReference(sql: string, colon: number): Omit<VariableReference, 'start' | 'line'> | undefined {
  const quote = sql[colon + 1];
  if (quote === "'" || quote === '"') {
    let i = colon + 2;
    while (i < sql.length && variableChar.test(sql[i] as string)) i++;
    if (i === colon + 2 || sql[i] !== quote) return undefined; // not a reference: a plain ':' then a quote
    return { name: sql.slice(colon + 2, i), kind: quote === "'" ? 'literal' : 'identifier', end: i + 1 };
  }
  let i = colon + 1;
  while (i < sql.length && variableChar.test(sql[i] as string)) i++;
  if (i === colon + 1 || /[0-9]/.test(sql[colon + 1] as string)) return undefined;
  return { name: sql.slice(colon + 1, i), kind: 'raw', end: i };
}

/**
 * Turns a psql-ready statement into a parameterised one: every `:'name'` becomes a `$n` placeholder and its
 * value goes to `values` — user input is never spliced into the SQL text, so quotes and semicolons in a value
 * are data. Each reference gets a placeholder of its own (Postgres infers each one's type from its context).
 *
 * Only `:'name'` is bindable: `:name` and `:"name"` paste text into the SQL (psql does exactly that), so a
 * file using them is refused rather than interpolated.
 *
 * @throws SqlQueryError naming every missing variable, every variable the statement does not use, or the
 *   first raw reference.
 */
export function bindVariables(sql: string, variables: Readonly<Record<string, string>>): BoundStatement {
  const references = findVariableReferences(sql);
  const raw = references.find((reference) => reference.kind !== 'literal');
  if (raw) {
    const shown = raw.kind === 'raw' ? `:${raw.name}` : `:"${raw.name}"`;
    throw new SqlQueryError(
      `line ${raw.line}: ${shown} would paste a value into the SQL text; query files use :'${raw.name}' ` +
        '(a quoted literal, which postbox sql binds as a parameter) with a cast where a type is needed',
    );
  }
  const used = [...new Set(references.map((reference) => reference.name))];
  const missing = used.filter((name) => !Object.hasOwn(variables, name));
  if (missing.length > 0) {
    throw new SqlQueryError(`missing ${missing.map((name) => `--var ${name}=…`).join(', ')}`);
  }
  const unknown = Object.keys(variables).filter((name) => !used.includes(name));
  if (unknown.length > 0) {
    throw new SqlQueryError(
      `unknown variable${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}: this query takes ` +
        (used.length > 0 ? used.join(', ') : 'no variables'),
    );
  }
  let text = '';
  let from = 0;
  const values: string[] = [];
  for (const reference of references) {
    values.push(variables[reference.name] as string);
    text += `${sql.slice(from, reference.start)}$${values.length}`;
    from = reference.end;
  }
  text += sql.slice(from);
  return { text, values };
}
