const HEADERS = {
  scenario: 'Scenario',
  figure: 'Figure',
  median: 'Median',
  spread: 'Spread (rounds min–max)',
  ratio: 'Ratio',
  target: 'Target',
};
/** The final table as Markdown with aligned columns (readable in a terminal, pasteable into the README). */
export function renderTable(rows) {
  const keys = Object.keys(HEADERS);
  const width = (key) => Math.max(HEADERS[key].length, ...rows.map((row) => [...row[key]].length));
  const widths = keys.map(width);
  const numeric = new Set(['median']);
  const line = (cells) =>
    `| ${cells
      .map((cell, i) => {
        const pad = (widths[i] ?? 0) - [...cell].length;
        return numeric.has(keys[i]) ? ' '.repeat(pad) + cell : cell + ' '.repeat(pad);
      })
      .join(' | ')} |`;
  const rule = `|${keys.map((key, i) => (numeric.has(key) ? `${'-'.repeat((widths[i] ?? 0) + 1)}:` : '-'.repeat((widths[i] ?? 0) + 2))).join('|')}|`;
  return [
    line(keys.map((key) => HEADERS[key])),
    rule,
    ...rows.map((row) => line(keys.map((key) => row[key]))),
  ].join('\n');
}
//# sourceMappingURL=table.js.map
