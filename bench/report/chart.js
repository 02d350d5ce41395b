const WIDTH = 960;
const LABEL_WIDTH = 230;
const PLOT_LEFT = LABEL_WIDTH + 20;
const PLOT_RIGHT = WIDTH - 110;
const BAR_HEIGHT = 16;
const BAR_GAP = 6;
const GROUP_GAP = 26;
const COLORS = ['#4c78a8', '#f58518', '#54a24b', '#b279a2', '#e45756', '#72b7b2'];
const PERCENTILE_COLORS = {
  p50: '#4c78a8',
  p95: '#72b7b2',
  p99: '#f58518',
  max: '#e45756',
};
const escapeXml = (text) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const compact = (value) =>
  value >= 10_000
    ? `${(value / 1000).toFixed(1)}k`
    : value >= 1000
      ? `${(value / 1000).toFixed(2)}k`
      : value >= 10
        ? value.toFixed(0)
        : value >= 1
          ? value.toFixed(1)
          : value.toFixed(2);
/**
 * An SVG with two panels: throughput per scenario (median bars, min–max whiskers over the rounds, one
 * linear scale) and latency percentiles per group (log scale, target lines); each group's label says what it
 * measures (commit → handler start, placeOrder → SHIPPED, commit → subscriber).
 */
export function renderChart(input) {
  const parts = [];
  let y = 30;
  parts.push(`<text x="20" y="${y}" class="title">${escapeXml(input.title)}</text>`);
  y += 20;
  parts.push(`<text x="20" y="${y}" class="sub">${escapeXml(input.subtitle)}</text>`);
  y += 30;
  // Throughput panel.
  parts.push(`<text x="20" y="${y}" class="panel">Throughput (median of rounds; whiskers: min–max)</text>`);
  y += 14;
  const maxRate = Math.max(1, ...input.throughput.map((bar) => bar.max));
  const xRate = (value) => PLOT_LEFT + (value / maxRate) * (PLOT_RIGHT - PLOT_LEFT);
  const groups = [...new Set(input.throughput.map((bar) => bar.group))];
  const axisTop = y;
  groups.forEach((group, g) => {
    y += GROUP_GAP - 6;
    parts.push(`<text x="20" y="${y}" class="group">${escapeXml(group)}</text>`);
    y += 6;
    for (const bar of input.throughput.filter((candidate) => candidate.group === group)) {
      const color = COLORS[g % COLORS.length];
      const mid = y + BAR_HEIGHT / 2;
      parts.push(
        `<text x="${LABEL_WIDTH}" y="${mid + 4}" class="label" text-anchor="end">${escapeXml(bar.label)}</text>`,
        `<rect x="${PLOT_LEFT}" y="${y}" width="${Math.max(1, xRate(bar.median) - PLOT_LEFT).toFixed(1)}" height="${BAR_HEIGHT}" fill="${color}"/>`,
        `<line x1="${xRate(bar.min).toFixed(1)}" x2="${xRate(bar.max).toFixed(1)}" y1="${mid}" y2="${mid}" class="whisker"/>`,
        `<line x1="${xRate(bar.min).toFixed(1)}" x2="${xRate(bar.min).toFixed(1)}" y1="${mid - 4}" y2="${mid + 4}" class="whisker"/>`,
        `<line x1="${xRate(bar.max).toFixed(1)}" x2="${xRate(bar.max).toFixed(1)}" y1="${mid - 4}" y2="${mid + 4}" class="whisker"/>`,
        `<text x="${(xRate(bar.max) + 6).toFixed(1)}" y="${mid + 4}" class="value">${compact(bar.median)} ${escapeXml(bar.unit)}</text>`,
      );
      y += BAR_HEIGHT + BAR_GAP;
    }
  });
  const ticks = niceTicks(maxRate, 5);
  for (const tick of ticks) {
    const x = xRate(tick).toFixed(1);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${axisTop}" y2="${y}" class="grid"/>`,
      `<text x="${x}" y="${y + 14}" class="tick" text-anchor="middle">${tick === 0 ? '0' : `${compact(tick)}/s`}</text>`,
    );
  }
  y += 50;
  // Latency panel.
  if (input.latency.length > 0) {
    parts.push(`<text x="20" y="${y}" class="panel">Latency (ms, log scale): p50 · p95 · p99 · max</text>`);
    y += 14;
    const values = input.latency.flatMap((bar) => [bar.p50, bar.p95, bar.p99, bar.max]);
    const lo = 0.1;
    const hi = Math.max(100, ...values, ...input.latencyTargets.map((target) => target.ms)) * 1.2;
    const xMs = (ms) =>
      PLOT_LEFT +
      ((Math.log10(Math.max(lo, ms)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) *
        (PLOT_RIGHT - PLOT_LEFT);
    const top = y;
    for (const level of input.latency) {
      y += GROUP_GAP - 6;
      parts.push(`<text x="20" y="${y}" class="group">${escapeXml(level.label)}</text>`);
      y += 6;
      for (const key of ['p50', 'p95', 'p99', 'max']) {
        const mid = y + BAR_HEIGHT / 2;
        parts.push(
          `<text x="${LABEL_WIDTH}" y="${mid + 4}" class="label" text-anchor="end">${key}</text>`,
          `<rect x="${PLOT_LEFT}" y="${y}" width="${Math.max(1, xMs(level[key]) - PLOT_LEFT).toFixed(1)}" height="${BAR_HEIGHT}" fill="${PERCENTILE_COLORS[key]}"/>`,
          `<text x="${(xMs(level[key]) + 6).toFixed(1)}" y="${mid + 4}" class="value">${compact(level[key])} ms</text>`,
        );
        y += BAR_HEIGHT + BAR_GAP;
      }
    }
    for (let decade = Math.log10(lo); decade <= Math.log10(hi); decade++) {
      const ms = 10 ** decade;
      const x = xMs(ms).toFixed(1);
      parts.push(
        `<line x1="${x}" x2="${x}" y1="${top}" y2="${y}" class="grid"/>`,
        `<text x="${x}" y="${y + 14}" class="tick" text-anchor="middle">${ms >= 1 ? ms.toLocaleString('en-US') : ms} ms</text>`,
      );
    }
    for (const target of input.latencyTargets) {
      const x = xMs(target.ms).toFixed(1);
      parts.push(
        `<line x1="${x}" x2="${x}" y1="${top}" y2="${y}" class="target"/>`,
        `<text x="${x}" y="${top - 2}" class="tick" text-anchor="middle">${escapeXml(target.label)}</text>`,
      );
    }
    y += 40;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">
<style>
  .title { font-size: 18px; font-weight: 600; fill: #222; }
  .sub { font-size: 12px; fill: #555; }
  .panel { font-size: 14px; font-weight: 600; fill: #222; }
  .group { font-size: 12px; font-weight: 600; fill: #444; }
  .label { font-size: 12px; fill: #333; }
  .value { font-size: 11px; fill: #333; }
  .tick { font-size: 10px; fill: #777; }
  .grid { stroke: #ddd; stroke-width: 1; }
  .whisker { stroke: #222; stroke-width: 1.2; }
  .target { stroke: #c00; stroke-width: 1; stroke-dasharray: 4 3; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
${parts.join('\n')}
</svg>
`;
}
/** Round tick values from 0 to about `max`. */
function niceTicks(max, count) {
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= raw) ?? raw;
  const ticks = [];
  for (let value = 0; value <= max + 1e-9; value += step) ticks.push(value);
  return ticks;
}
//# sourceMappingURL=chart.js.map
