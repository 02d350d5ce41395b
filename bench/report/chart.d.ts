import type { LatencyBar, ThroughputBar } from '../scenario.ts';
/** What the chart shows besides the bars. */
export interface ChartInput {
  readonly title: string;
  readonly subtitle: string;
  readonly throughput: readonly ThroughputBar[];
  readonly latency: readonly LatencyBar[];
  /** Dashed reference lines on the latency panel (ms). */
  readonly latencyTargets: ReadonlyArray<{
    readonly ms: number;
    readonly label: string;
  }>;
}
/**
 * An SVG with two panels: throughput per scenario (median bars, min–max whiskers over the rounds, one
 * linear scale) and latency percentiles per group (log scale, target lines); each group's label says what it
 * measures (commit → handler start, placeOrder → SHIPPED, commit → subscriber).
 */
export declare function renderChart(input: ChartInput): string;
//# sourceMappingURL=chart.d.ts.map
