/** Options of {@link startServiceProcess}. */
export interface ServiceProcessOptions {
  /** The scenario database (already migrated: the service's own migration run is then a no-op). */
  readonly databaseUrl: string;
  /** Run the relay and the shop's consumers too (`false`: `serve --no-workers`, API only). */
  readonly workers: boolean;
  /** Extra environment for the service (e.g. `PAYMENT_LIMIT_CENTS`); wins over the bench's settings. */
  readonly env?: Readonly<Record<string, string>>;
  /** Give up waiting for `/readyz` after this long, ms. Default `30000`. */
  readonly readyTimeoutMs?: number;
}
/** Memory of the service process, from `/proc/<pid>/status`, in bytes. */
export interface MemorySample {
  /** Resident set size now (`VmRSS`). */
  readonly rssBytes: number;
  /** Peak resident set size since the process started (`VmHWM`). */
  readonly peakRssBytes: number;
}
/** How the service process ended. */
export interface ServiceExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** It did not stop within the grace period after SIGTERM and was killed. */
  readonly killed: boolean;
  readonly stopMs: number;
}
/** What the service wrote at warn level or above, for the results. */
export interface ServiceLogSummary {
  readonly warnings: number;
  readonly errors: number;
  /** The first lines at error level or above (and any line that is not pino JSON), at most 20. */
  readonly errorLines: readonly string[];
}
/** A running `postbox serve` child process. */
export interface ServiceProcess {
  readonly pid: number;
  /** `http://127.0.0.1:<port>/graphql`. */
  readonly graphqlUrl: string;
  /** `ws://127.0.0.1:<port>/graphql`. */
  readonly websocketUrl: string;
  /** The service's environment settings the bench chose (recorded with the results). */
  readonly settings: Readonly<Record<string, string>>;
  /** Milliseconds from spawning it to `/readyz` answering 200. */
  readonly startMs: number;
  /** A memory sample now; `undefined` where `/proc` is not available or the process is gone. */
  memory(): MemorySample | undefined;
  /** CPU seconds (user + system) it has used so far; `undefined` where `/proc` is not available. */
  cpuSeconds(): number | undefined;
  /** Warnings and errors it logged so far. */
  logSummary(): ServiceLogSummary;
  /** SIGTERM, then SIGKILL after `graceMs` (default 15 s); resolves once the process has exited. Idempotent. */
  stop(graceMs?: number): Promise<ServiceExit>;
}
/** Picks a free TCP port on 127.0.0.1 (listen on 0, read the port, close). */
export declare function freePort(): Promise<number>;
/** Reads `VmRSS` and `VmHWM` of a process (Linux); `undefined` elsewhere or once it has exited. */
export declare function readProcessMemory(pid: number): MemorySample | undefined;
/**
 * CPU seconds (user + system) a process has used (Linux `/proc/<pid>/stat`); `undefined` elsewhere. Assumes
 * the usual 100 clock ticks per second (`getconf CLK_TCK`), which Node cannot read.
 */
export declare function readProcessCpuSeconds(pid: number): number | undefined;
/**
 * Starts `postbox serve` as a separate Node process on the scenario database and waits until `/readyz`
 * answers 200. A separate process keeps the bench's clients (hundreds of them in the subscription
 * scenario) off the service's event loop, as they would be in production, and makes the service's memory
 * readable on its own.
 *
 * The service runs with authentication off, a rate limit no bench reaches, JSON logs at warn level and
 * production mode; every other setting is Postbox's default (pool 20, worker concurrency 8, relay poll
 * 2000 ms). `POSTBOX_*` variables of the caller's shell are not passed on, so the figures are those of the
 * defaults whatever shell the bench runs from.
 *
 * The caller must {@link ServiceProcess.stop} it in a `finally`; should the bench die first, an `exit`
 * handler kills it, so it never outlives the bench.
 */
export declare function startServiceProcess(options: ServiceProcessOptions): Promise<ServiceProcess>;
//# sourceMappingURL=service-process.d.ts.map
