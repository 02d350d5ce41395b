/** The machine a run was measured on (the server's facts are added by the runner). */
export interface MachineFacts {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryBytes: number;
  readonly memoryGiB: number;
  readonly loadAverage: readonly number[];
  readonly os: string;
  readonly node: string;
  readonly hostname: string;
}
/** Reads the machine's facts. */
export declare function describeMachine(): MachineFacts;
/** The code that was measured: commit, and whether the engine's files differed from it. */
export interface CodeFacts {
  readonly commit: string | null;
  /** Files under src/ or migrations/ changed against the commit (a bench of uncommitted engine code). */
  readonly uncommitted: readonly string[];
}
/** Reads the git state of the working tree (null commit outside a git checkout). */
export declare function describeCode(): Promise<CodeFacts>;
//# sourceMappingURL=machine.d.ts.map
