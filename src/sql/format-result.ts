import type { QueryResult } from './run-query.ts';

/** Output formats of `postbox sql`. */
export const RESULT_FORMATS = ['table', 'json', 'csv'] as const;
/** One of {@link RESULT_FORMATS}. */
export type ResultFormat = (typeof RESULT_FORMATS)[number];

// These formatters are small and written here on purpose: table and csv reproduce psql's own aligned and
// --csv output byte for byte (tested against psql), so a query's output reads the same whichever way it
// was run; a table library would add its own borders and alignment rules.

/** Type OIDs psql right-aligns: int2/4/8, oid, xid, xid8, cid, float4/8, money, numeric. */
const NUMERIC_TYPES = new Set([20, 21, 23, 26, 28, 29, 700, 701, 790, 1700, 5069]);
const BOOL = 16;
const INT_TYPES = new Set([20, 21, 23, 26]);
const FLOAT_TYPES = new Set([700, 701, 1700]);
const JSON_TYPES = new Set([114, 3802]);

/** Renders a result in `format`, ending with a newline. */
export function formatResult(result: QueryResult, format: ResultFormat): string {
  switch (format) {
    case 'table':
      return formatTable(result);
    case 'csv':
      return formatCsv(result);
    case 'json':
      return `${JSON.stringify(toJsonRows(result), null, 2)}\n`;
  }
}

/**
 * psql's default "aligned" output: centred headers, numbers right-aligned, `+` where a value continues on
 * the next line, NULL as nothing, and the `(N rows)` footer.
 */
export function formatTable(result: QueryResult): string {
  const { columns, rows } = result;
  const cells = rows.map((row) => columns.map((_, index) => expandTabs(row[index] ?? '').split('\n')));
  const widths = columns.map((column, index) =>
    Math.max(
      displayWidth(column.name),
      ...cells.map((row) => Math.max(...(row[index] ?? ['']).map((line) => displayWidth(line)))),
    ),
  );
  const last = columns.length - 1;
  const lines: string[] = [];
  lines.push(
    columns
      .map((column, index) => {
        const width = widths[index] ?? 0;
        const room = width - displayWidth(column.name);
        const left = Math.floor(room / 2);
        return ` ${' '.repeat(left)}${column.name}${' '.repeat(room - left)} `;
      })
      .join('|'),
  );
  lines.push(widths.map((width) => '-'.repeat(width + 2)).join('+'));
  for (const row of cells) {
    const height = Math.max(1, ...row.map((cell) => cell.length));
    for (let line = 0; line < height; line++) {
      let text = '';
      columns.forEach((column, index) => {
        const cell = row[index] ?? [''];
        const value = cell[line] ?? '';
        const continues = line < cell.length - 1;
        const width = widths[index] ?? 0;
        const pad = ' '.repeat(width - displayWidth(value));
        const aligned = NUMERIC_TYPES.has(column.typeId) ? pad + value : value + pad;
        if (index < last) text += ` ${aligned}${continues ? '+' : ' '}|`;
        else if (continues) text += ` ${aligned}+`;
        else text += ` ${NUMERIC_TYPES.has(column.typeId) ? aligned : value}`;
      });
      lines.push(text);
    }
  }
  lines.push(`(${rows.length} ${rows.length === 1 ? 'row' : 'rows'})`);
  return `${lines.join('\n')}\n\n`;
}

/** psql's `--csv` output: a header line, fields quoted only when they must be, NULL as an empty field. */
export function formatCsv(result: QueryResult): string {
  const line = (fields: ReadonlyArray<string | null>) =>
    fields.map((field) => csvField(field ?? '')).join(',');
  return `${[line(result.columns.map((column) => column.name)), ...result.rows.map(line)].join('\n')}\n`;
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) || value === '\\.' ? `"${value.replaceAll('"', '""')}"` : value;
}

/**
 * Rows as objects keyed by column name: integers and numerics as JSON numbers when exact (else strings),
 * booleans as booleans, json/jsonb parsed, everything else (timestamps, intervals, uuids…) as Postgres' text.
 */
export function toJsonRows(result: QueryResult): Array<Record<string, unknown>> {
  return result.rows.map((row) =>
    Object.fromEntries(
      result.columns.map((column, index) => [column.name, jsonValue(row[index] ?? null, column.typeId)]),
    ),
  );
}

function jsonValue(value: string | null, typeId: number): unknown {
  if (value === null) return null;
  if (typeId === BOOL) return value === 't';
  if (JSON_TYPES.has(typeId)) return JSON.parse(value);
  if (INT_TYPES.has(typeId)) {
    const number = Number(value);
    return Number.isSafeInteger(number) ? number : value;
  }
  if (FLOAT_TYPES.has(typeId)) {
    const number = Number(value);
    // Keep the text when a double cannot hold it exactly (a long numeric) or it is NaN/Infinity.
    const exact = typeId !== 1700 || String(number) === trimZeros(value);
    return Number.isFinite(number) && exact ? number : value;
  }
  return value;
}

/** `12.50` → `12.5`, `3.00` → `3`, `100` → `100`. */
function trimZeros(value: string): string {
  return value.includes('.') ? value.replace(/0+$/, '').replace(/\.$/, '') : value;
}

/** Width in terminal columns, counting code points (psql counts East Asian wide characters double; we do not). */
function displayWidth(text: string): number {
  let width = 0;
  for (const _ of text) width++;
  return width;
}

/** Tabs to spaces at 8-column stops, as psql prints them. */
function expandTabs(text: string): string {
  if (!text.includes('\t')) return text;
  return text
    .split('\n')
    .map((line) => {
      let out = '';
      for (const char of line) out += char === '\t' ? ' '.repeat(8 - (displayWidth(out) % 8)) : char;
      return out;
    })
    .join('\n');
}
