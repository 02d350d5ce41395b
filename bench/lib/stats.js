/** Summarises round values (an empty list gives zeros). */
export function summarize(values) {
  if (values.length === 0) return { median: 0, min: 0, max: 0, mean: 0, spreadPct: 0, rounds: [] };
  const sorted = [...values].sort((a, b) => a - b);
  const median = quantileOfSorted(sorted, 0.5);
  const min = sorted[0] ?? 0;
  const max = sorted.at(-1) ?? 0;
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  return {
    median,
    min,
    max,
    mean,
    spreadPct: median === 0 ? 0 : ((max - min) / median) * 100,
    rounds: [...values],
  };
}
/** Linear-interpolated quantile (0..1) of an ascending array. */
export function quantileOfSorted(sorted, q) {
  const n = sorted.length;
  if (n === 0) return 0;
  const index = (n - 1) * Math.min(1, Math.max(0, q));
  const lower = Math.floor(index);
  const upper = Math.ceil(index);
  const a = sorted[lower] ?? 0;
  const b = sorted[upper] ?? a;
  return a + (b - a) * (index - lower);
}
/** Percentiles of a sample (not modified). */
export function percentiles(samples) {
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    count: n,
    p50: quantileOfSorted(sorted, 0.5),
    p95: quantileOfSorted(sorted, 0.95),
    p99: quantileOfSorted(sorted, 0.99),
    max: n ? (sorted[n - 1] ?? 0) : 0,
    mean: n ? sum / n : 0,
  };
}
/** Least-squares slope of y over x (units of y per unit of x); 0 with fewer than two points. */
export function slope(points) {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
/** Rounds to `digits` significant decimals for the JSON (keeps files readable). */
export function round(value, digits = 2) {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
/** Percentiles for the results file, each rounded to `digits` decimals. */
export function percentilesJson(stats, digits) {
  return {
    count: stats.count,
    p50: round(stats.p50, digits),
    p95: round(stats.p95, digits),
    p99: round(stats.p99, digits),
    max: round(stats.max, digits),
    mean: round(stats.mean, digits),
  };
}
/** Bytes as MiB with one decimal for the results file; `null` when unknown. */
export function mib(bytes) {
  return bytes === undefined ? null : round(bytes / 1024 / 1024, 1);
}
//# sourceMappingURL=stats.js.map
