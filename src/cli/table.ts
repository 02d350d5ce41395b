import { formatTable } from '../sql/format-result.ts';

/** A column of a CLI table: numbers are right-aligned, as psql aligns them. */
export interface TableColumn {
  readonly name: string;
  readonly numeric?: boolean;
}

// psql's type OIDs for alignment: int8 right-aligned, text left-aligned.
const INT8 = 20;
const TEXT = 25;

/**
 * Renders rows the way `postbox sql` (and psql) print a result, so every command's table reads alike:
 * centred headers, numbers right-aligned, an empty cell for null, and the `(N rows)` footer.
 */
export function renderTable(
  columns: readonly TableColumn[],
  rows: ReadonlyArray<ReadonlyArray<string | number | bigint | { toString(): string } | null | undefined>>,
): string {
  return formatTable({
    columns: columns.map((column) => ({ name: column.name, typeId: column.numeric ? INT8 : TEXT })),
    rows: rows.map((row) => row.map((cell) => (cell === null || cell === undefined ? null : String(cell)))),
  });
}
