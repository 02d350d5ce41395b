/** 7123.4 → "7,123". */
export function formatCount(value) {
  return Math.round(value).toLocaleString('en-US');
}
/** 0.934 → "93%". */
export function formatPercent(share) {
  return `${Math.round(share * 100)}%`;
}
/** Milliseconds with precision that suits the size: 0.42, 4.2, 42. */
export function formatMs(ms) {
  if (ms < 1) return ms.toFixed(2);
  if (ms < 10) return ms.toFixed(1);
  return Math.round(ms).toLocaleString('en-US');
}
/** "6,900–7,300 (±3%)": the rounds' range and half the relative spread. */
export function formatSpread(summary) {
  if (summary.rounds.length < 2) return `n=${summary.rounds.length}`;
  return `${formatCount(summary.min)}–${formatCount(summary.max)} (±${Math.round(summary.spreadPct / 2)}%)`;
}
/** "0.93×" */
export function formatRatio(ratio) {
  return `${ratio.toFixed(ratio >= 10 ? 1 : 2)}×`;
}
/** "✓ ≥ 85%" / "✗ ≥ 85%". */
export function formatTarget(met, target) {
  return `${met ? '✓' : '✗'} ${target}`;
}
//# sourceMappingURL=format.js.map
