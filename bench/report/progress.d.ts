import type { Progress } from '../scenario.ts';
/** The run's progress display: a bar on a terminal, one line per step otherwise (CI logs). */
export interface ProgressDisplay {
  /** Progress for one scenario (its steps add to the shared bar). */
  forScenario(title: string): Progress;
  /** Prints a line without breaking the bar. */
  log(message: string): void;
  stop(): void;
}
/** Starts the display for `total` steps, on stderr (stdout keeps the table). `enabled: false` prints nothing. */
export declare function startProgress(total: number, enabled: boolean): ProgressDisplay;
//# sourceMappingURL=progress.d.ts.map
