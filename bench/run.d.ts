import type { ScenarioModule } from './scenario.ts';
/** Options of {@link runBench} (the `postbox bench` flags). */
export interface BenchOptions {
  /** Smoke run: short rounds, small backlogs (< 2 min). Default `false`. */
  readonly quick?: boolean;
  /** Multiplies every duration and backlog size. Default `1`. */
  readonly scale?: number;
  /** Run on this server (creating and dropping databases of its own) instead of a fresh embedded one. */
  readonly databaseUrl?: string;
  /** Where `<timestamp>.json` and `<timestamp>.svg` go. Default `bench/results`. */
  readonly outDir?: string;
  /** File name without extension. Default: the start time, e.g. `2026-11-23T06-40-12Z`. */
  readonly name?: string;
  /** Only these scenario keys (others are recorded as `skipped`). Default: all. */
  readonly only?: readonly string[];
  /** Show progress on stderr. Default `true`. */
  readonly progress?: boolean;
  /** Where the table and the summary are written. Default: stdout. */
  readonly write?: (text: string) => void;
  /** Extra scenario modules to run after the built-in ones (e.g. from a feature that is not merged yet). */
  readonly extraScenarios?: readonly ScenarioModule[];
}
/** What {@link runBench} produced. */
export interface BenchOutcome {
  readonly jsonPath: string;
  readonly svgPath: string;
  readonly table: string;
  readonly report: Record<string, unknown>;
  /** Keys of scenarios that threw or reported status 'failed' (their sections say why). */
  readonly failed: readonly string[];
}
/**
 * Runs the bench: one fresh server (embedded unless `databaseUrl`), one fresh database per scenario, every
 * scenario in order; then writes the JSON and the SVG and prints the table.
 */
export declare function runBench(options?: BenchOptions): Promise<BenchOutcome>;
//# sourceMappingURL=run.d.ts.map
