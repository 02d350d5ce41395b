import type { BenchServer } from './lib/server.ts';

/** Sizes and durations of one bench run, derived from `--quick` and `--scale`. */
export interface BenchPlan {
  readonly mode: 'full' | 'quick';
  readonly scale: number;
  /** Client counts of the baseline/append comparison. */
  readonly concurrencies: readonly number[];
  readonly append: { readonly warmupSeconds: number; readonly roundSeconds: number; readonly rounds: number };
  readonly drain: {
    readonly events: number;
    readonly rounds: number;
    /**
     * The one-job-per-event design is timed over at most this many seconds (its steady rate over the same
     * backlog); at ~1–3k jobs/s a whole 100k backlog would take minutes per round.
     */
    readonly naiveMaxSeconds: number;
    /** Worker concurrency of both designs (graphile-worker `concurrency`). */
    readonly concurrency: number;
    readonly partitions: number;
  };
  readonly latency: {
    /** Offered load as shares of the measured append capacity. */
    readonly loads: readonly number[];
    readonly warmupSeconds: number;
    readonly seconds: number;
    /** Producer connections (transactions in flight at most). */
    readonly producers: number;
  };
  readonly notify: {
    readonly concurrency: number;
    readonly warmupSeconds: number;
    readonly roundSeconds: number;
    readonly rounds: number;
  };
  /** Scenario 5: `placeOrder` over HTTP against a `postbox serve` child process running the shop's consumers. */
  readonly shop: {
    /**
     * Orders per second of the paced level (open loop, run before the closed loops): commit → SHIPPED while
     * the handler chain keeps up.
     */
    readonly pacedRate: number;
    /** placeOrder calls in flight (closed loop), one measured level each, in this order. */
    readonly concurrencies: readonly number[];
    /** Closed loop at the first level before anything is measured (JIT, pools, plans). */
    readonly warmupSeconds: number;
    /** Measured window of each level (the paced one and each concurrency). */
    readonly seconds: number;
    /**
     * After a level's window, the longest wait for its orders to reach a final state (not scaled: it bounds
     * a backlog, it does not size the run).
     */
    readonly catchUpSeconds: number;
  };
  /** Scenario 8: webhook destinations to a local receiver. */
  readonly webhook: {
    /** Backlog delivered flat out (events/s). */
    readonly events: number;
    /** Streams the events are spread over. */
    readonly streams: number;
    /** Measured window of the 25 % load level (commit → received). */
    readonly latencySeconds: number;
    /** How long the receiver answers 503. */
    readonly outageSeconds: number;
  };
  /** Scenario 9: broker destinations (NATS JetStream, RabbitMQ) against the same client's raw publishing. */
  readonly broker: {
    /** Backlog published flat out, by Postbox and by the raw client (events/s). */
    readonly events: number;
    /** Streams the events are spread over. */
    readonly streams: number;
    /** Measured window of the 25 % load level (commit → received by an independent consumer). */
    readonly latencySeconds: number;
  };
  /** `--peers`: the same four scenarios through Postbox and its peers (bench/peers/). */
  readonly peers: {
    /** Rounds of every scenario (a fresh database per system and round); the tables show medians. */
    readonly rounds: number;
    /** Handlers running at once in every system (workers, partitions, localConcurrency). */
    readonly consumerConcurrency: number;
    readonly append: {
      readonly concurrencies: readonly number[];
      readonly warmupSeconds: number;
      readonly roundSeconds: number;
    };
    readonly drain: {
      readonly events: number;
      /** Streams (keys) the backlog is spread over, `events / streams` events each. */
      readonly streams: number;
      /** A drain still running after this long is stopped and reported as time-boxed (not scaled). */
      readonly maxSeconds: number;
    };
    readonly sustained: {
      readonly writers: number;
      /** Streams each writer owns (round-robin), so every stream gets many versions. */
      readonly streamsPerWriter: number;
      readonly seconds: number;
      /** After the writers stop, how long to wait for the last effects before counting the rest lost. */
      readonly settleSeconds: number;
    };
    readonly latency: {
      /** Events (transactions) committed per second, open loop. */
      readonly rate: number;
      readonly warmupSeconds: number;
      readonly seconds: number;
      readonly maxInFlight: number;
      /** After the window, how long to wait for the last handlers to start (the rest count as missing). */
      readonly settleSeconds: number;
    };
  };
  /** Scenario 6: subscribers of the `events` subscription on a `postbox serve --no-workers` child process. */
  readonly subscriptions: {
    /** Subscribers over graphql-sse (each its own HTTP connection). */
    readonly sse: number;
    /** Subscribers over graphql-ws (each its own WebSocket). */
    readonly websocket: number;
    /**
     * Events committed per second by the bench's producer (open loop, one event per transaction), one
     * measured window each, in this order; the warm-up runs at the first.
     */
    readonly rates: readonly number[];
    readonly warmupSeconds: number;
    /** Measured window of each rate: latency counts events committed in it. */
    readonly seconds: number;
  };
}

/** A row of the final table (already formatted). */
export interface TableRow {
  readonly scenario: string;
  readonly figure: string;
  readonly median: string;
  readonly spread: string;
  readonly ratio: string;
  readonly target: string;
}

/** One throughput bar of the chart: a median with its min–max whisker. */
export interface ThroughputBar {
  readonly group: string;
  readonly label: string;
  readonly unit: string;
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** One latency group of the chart (milliseconds). */
export interface LatencyBar {
  readonly label: string;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** A target of the issue, checked against this run's figures. */
export interface TargetCheck {
  readonly name: string;
  readonly target: string;
  readonly actual: string;
  readonly met: boolean;
}

/** What a scenario module hands back: its JSON sections, table rows, chart data and target checks. */
export interface ScenarioOutput {
  /** JSON sections by scenario key; each has a `status`. */
  readonly results: Record<string, { status: 'ok' | 'pending' | 'failed' } & Record<string, unknown>>;
  readonly rows: readonly TableRow[];
  readonly bars?: readonly ThroughputBar[];
  readonly latency?: readonly LatencyBar[];
  readonly targets?: readonly TargetCheck[];
}

/** Reports progress: one call per finished step (the module announced how many with `steps`). */
export interface Progress {
  step(label: string): void;
  /** Shows what is running now without counting a step. */
  status(label: string): void;
}

/** What a running scenario gets. */
export interface ScenarioContext {
  readonly server: BenchServer;
  readonly plan: BenchPlan;
  readonly progress: Progress;
  /** Sections of the scenarios that ran before (e.g. the latency scenario reads the append capacity). */
  readonly earlier: Readonly<Record<string, Record<string, unknown>>>;
  /** A line for the log (stderr), kept out of the progress bar's way. */
  log(message: string): void;
}

/**
 * A pluggable scenario: the runner knows nothing of what it measures. A module may fill several result
 * keys (the baseline and append are measured together, interleaved).
 */
export interface ScenarioModule {
  /** Result keys it fills, e.g. `['baseline', 'append']`; `--only` selects by these. */
  readonly keys: readonly string[];
  readonly title: string;
  /** Progress steps it will report for this plan. */
  steps(plan: BenchPlan): number;
  run(context: ScenarioContext): Promise<ScenarioOutput>;
}
