import type { Summary } from '../lib/stats.ts';
/** 7123.4 → "7,123". */
export declare function formatCount(value: number): string;
/** 0.934 → "93%". */
export declare function formatPercent(share: number): string;
/** Milliseconds with precision that suits the size: 0.42, 4.2, 42. */
export declare function formatMs(ms: number): string;
/** "6,900–7,300 (±3%)": the rounds' range and half the relative spread. */
export declare function formatSpread(summary: Summary): string;
/** "0.93×" */
export declare function formatRatio(ratio: number): string;
/** "✓ ≥ 85%" / "✗ ≥ 85%". */
export declare function formatTarget(met: boolean, target: string): string;
//# sourceMappingURL=format.d.ts.map
