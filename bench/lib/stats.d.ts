/** Median and spread of the rounds of one measurement. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  /** (max − min) / median, in percent: how much the rounds disagreed. */
  readonly spreadPct: number;
  /** Every round's value, in the order measured. */
  readonly rounds: readonly number[];
}
/** Summarises round values (an empty list gives zeros). */
export declare function summarize(values: readonly number[]): Summary;
/** Linear-interpolated quantile (0..1) of an ascending array. */
export declare function quantileOfSorted(sorted: ArrayLike<number>, q: number): number;
/** Latency percentiles, in milliseconds. */
export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}
/** Percentiles of a sample (not modified). */
export declare function percentiles(samples: ArrayLike<number>): Percentiles;
/** Least-squares slope of y over x (units of y per unit of x); 0 with fewer than two points. */
export declare function slope(points: ReadonlyArray<readonly [number, number]>): number;
/** Rounds to `digits` significant decimals for the JSON (keeps files readable). */
export declare function round(value: number, digits?: number): number;
/** Percentiles for the results file, each rounded to `digits` decimals. */
export declare function percentilesJson(
  stats: Percentiles,
  digits: number,
): {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
};
/** Bytes as MiB with one decimal for the results file; `null` when unknown. */
export declare function mib(bytes: number | undefined): number | null;
//# sourceMappingURL=stats.d.ts.map
