import type { TableRow } from '../scenario.ts';
/** The final table as Markdown with aligned columns (readable in a terminal, pasteable into the README). */
export declare function renderTable(rows: readonly TableRow[]): string;
//# sourceMappingURL=table.d.ts.map
