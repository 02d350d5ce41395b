import type { TableRow } from '../scenario.ts';

const HEADERS: Record<keyof TableRow, string> = {
  scenario: 'Scenario',
  figure: 'Figure',
  median: 'Median',
  spread: 'Spread (rounds min–max)',
  ratio: 'Ratio',
  target: 'Target',
};

/** The final table as Markdown with aligned columns (readable in a terminal, pasteable into the README). */
export function renderTable(rows: readonly TableRow[]): string {
  const keys = Object.keys(HEADERS) as Array<keyof TableRow>;
  const width = (key: keyof TableRow) =>
    Math.max(HEADERS[key].length, ...rows.map((row) => [...row[key]].length));
  const widths = keys.map(width);
  const numeric = new Set<keyof TableRow>(['median']);
  const line = (cells: string[]) =>
    `| ${cells
      .map((cell, i) => {
        const pad = (widths[i] ?? 0) - [...cell].length;
        return numeric.has(keys[i] as keyof TableRow) ? ' '.repeat(pad) + cell : cell + ' '.repeat(pad);
      })
      .join(' | ')} |`;
  const rule = `|${keys.map((key, i) => (numeric.has(key) ? `${'-'.repeat((widths[i] ?? 0) + 1)}:` : '-'.repeat((widths[i] ?? 0) + 2))).join('|')}|`;
  return [
    line(keys.map((key) => HEADERS[key])),
    rule,
    ...rows.map((row) => line(keys.map((key) => row[key]))),
  ].join('\n');
}
