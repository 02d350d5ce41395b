import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeCode, describeMachine } from './lib/machine.ts';
import { startBenchServer } from './lib/server.ts';
import { makePlan } from './plan.ts';
import { renderChart } from './report/chart.ts';
import { startProgress } from './report/progress.ts';
import { renderTable } from './report/table.ts';
import type { LatencyBar, ScenarioModule, TableRow, TargetCheck, ThroughputBar } from './scenario.ts';
import { scenarios as allScenarios } from './scenarios/index.ts';

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
  /**
   * Run the peer comparison (bench/peers/) instead of the suite: append, drain, sustained load and latency
   * through Postbox, Emmett, pg-boss and graphile-worker on the same server, then Postbox ÷ the best peer.
   * `only` then picks among `append,drain,sustained,latency` (or their `peers_` keys). Default `false`.
   */
  readonly peers?: boolean;
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
export async function runBench(options: BenchOptions = {}): Promise<BenchOutcome> {
  const write = options.write ?? ((text: string) => process.stdout.write(text));
  const plan = makePlan(options.quick ?? false, options.scale ?? 1);
  const startedAt = new Date();
  const name = options.name ?? `${startedAt.toISOString().slice(0, 19).replace(/:/g, '-')}Z`;
  const outDir = path.resolve(options.outDir ?? 'bench/results');
  // The peers (Emmett, pg-boss…) are loaded only for --peers: the suite's own run does not import them.
  const peers = options.peers ? await import('./peers/scenarios.ts') : undefined;
  const modules = peers
    ? [...peers.peerScenarios, ...(options.extraScenarios ?? [])]
    : [...allScenarios, ...(options.extraScenarios ?? [])];
  // With --peers, `--only drain` means `peers_drain`, and the summary always runs (it reads the others).
  const only = options.peers
    ? options.only && [
        ...options.only.map((key) => (key.startsWith('peers_') ? key : `peers_${key}`)),
        'peers_summary',
      ]
    : options.only;
  const known = new Set(modules.flatMap((module) => module.keys));
  for (const key of only ?? []) {
    if (!known.has(key)) throw new Error(`Unknown scenario "${key}"; known: ${[...known].join(', ')}`);
  }
  const selected = (module: ScenarioModule) => !only || module.keys.some((key) => only.includes(key));

  const machine = describeMachine();
  const code = await describeCode();
  const server = await startBenchServer(options.databaseUrl);
  const progress = startProgress(
    modules.filter(selected).reduce((sum, module) => sum + module.steps(plan), 0),
    options.progress ?? true,
  );
  const sections: Record<string, Record<string, unknown>> = {};
  const rows: TableRow[] = [];
  /** The rows of each module, for the per-scenario tables of `--peers`. */
  const tables: Array<{ title: string; rows: readonly TableRow[] }> = [];
  const bars: ThroughputBar[] = [];
  const latency: LatencyBar[] = [];
  const targets: TargetCheck[] = [];
  const failed: string[] = [];
  const timings: Record<
    string,
    { seconds: number; nodeCpuShare: number; loadAverageBefore: number; loadAverageAfter: number }
  > = {};
  let postgres: Awaited<ReturnType<typeof server.describe>>;
  // A rejection nobody handles, in the engine's or a library's background work, would end the process
  // and lose every figure measured so far. It is recorded with the scenario that was running instead,
  // and printed with the table: a correctness problem to fix, not a reason to lose the run.
  const backgroundErrors: Array<{ scenario: string; error: string }> = [];
  let currentScenario = 'setup';
  const listener = (reason: unknown) => {
    const error = reason instanceof Error ? (reason.stack ?? reason.message) : String(reason);
    backgroundErrors.push({ scenario: currentScenario, error });
    progress.log(`unhandled rejection during ${currentScenario}: ${error.split('\n')[0]}`);
  };
  process.on('unhandledRejection', listener);
  try {
    postgres = await server.describe();
    for (const module of modules) {
      if (!selected(module)) {
        for (const key of module.keys) sections[key] = { status: 'skipped' };
        continue;
      }
      const started = performance.now();
      const loadBefore = os.loadavg()[0] ?? 0;
      const cpuBefore = process.cpuUsage();
      currentScenario = module.keys.join('+');
      try {
        const output = await module.run({
          server,
          plan,
          progress: progress.forScenario(module.title),
          earlier: sections,
          log: (message) => progress.log(message),
        });
        Object.assign(sections, output.results);
        // A scenario that measured but found a correctness problem (e.g. a subscriber missing events)
        // returns its figures with status 'failed': the run fails too, without losing them.
        for (const [key, section] of Object.entries(output.results)) {
          if (section.status === 'failed') {
            failed.push(key);
            progress.log(`${module.title}: ${key} failed: ${String(section.error ?? 'see its section')}`);
          }
        }
        rows.push(...output.rows);
        tables.push({ title: module.title, rows: output.rows });
        bars.push(...(output.bars ?? []));
        latency.push(...(output.latency ?? []));
        targets.push(...(output.targets ?? []));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        progress.log(`${module.title} failed: ${message}`);
        for (const key of module.keys) {
          sections[key] = { status: 'failed', error: message };
          failed.push(key);
        }
        const failedRow: TableRow = {
          scenario: module.title,
          figure: '',
          median: 'failed',
          spread: message.slice(0, 60),
          ratio: '',
          target: '',
        };
        rows.push(failedRow);
        tables.push({ title: module.title, rows: [failedRow] });
      }
      // The 1-minute load average around each scenario: a busy neighbour shows up here.
      const elapsedMs = performance.now() - started;
      const cpu = process.cpuUsage(cpuBefore);
      timings[module.keys.join('+')] = {
        seconds: Math.round(elapsedMs / 100) / 10,
        // Share of one core the bench's Node process used (producers and engine share its one thread).
        nodeCpuShare: Math.round(((cpu.user + cpu.system) / 1000 / Math.max(1, elapsedMs)) * 100) / 100,
        loadAverageBefore: Math.round(loadBefore * 100) / 100,
        loadAverageAfter: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
      };
    }
  } finally {
    progress.stop();
    await server.stop();
    process.off('unhandledRejection', listener);
  }

  const finishedAt = new Date();
  const wallSeconds = Math.round((finishedAt.getTime() - startedAt.getTime()) / 100) / 10;
  const report = {
    schema: 'postbox-bench/1',
    name,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    wallSeconds,
    scenarioTimings: timings,
    mode: plan.mode,
    scale: plan.scale,
    ...(peers
      ? {
          peers: peers.peerSystems.map((system) => ({
            key: system.key,
            label: system.label,
            version: system.version,
            ordered: system.ordered,
            settings: system.settings,
          })),
        }
      : {}),
    plan,
    machine: { ...machine, postgres },
    code,
    scenarios: sections,
    pending: Object.entries(sections)
      .filter(([, section]) => section.status === 'pending')
      .map(([key]) => key),
    targets,
    table: rows,
    /** Rejections nobody handled (engine or library background work), with the scenario running then. */
    backgroundErrors,
  };
  await fs.mkdir(outDir, { recursive: true });
  const jsonPath = path.join(outDir, `${name}.json`);
  const svgPath = path.join(outDir, `${name}.svg`);
  await fs.writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  const subtitle =
    `${plan.mode} run · ${machine.cores} cores ${machine.cpuModel} · ${machine.memoryGiB} GiB · ` +
    `PostgreSQL ${postgres.version} (${postgres.kind}, fsync ${postgres.settings.fsync ?? '?'}, ` +
    `synchronous_commit ${postgres.settings.synchronous_commit ?? '?'}) · Node ${machine.node}`;
  await fs.writeFile(
    svgPath,
    renderChart({
      title: `Postbox bench ${name}`,
      subtitle,
      throughput: bars,
      latency,
      latencyTargets: latency.length
        ? [
            { ms: 5, label: 'p50 target 5 ms' },
            { ms: 25, label: 'p99 target 25 ms' },
          ]
        : [],
    }),
  );

  const table = options.peers
    ? tables.map(({ title, rows: tableRows }) => `## ${title}\n\n${renderTable(tableRows)}`).join('\n\n')
    : renderTable(rows);
  const targetLines = targets.map((target) => `${target.met ? '✓' : '✗'} ${target.name}: ${target.actual}`);
  for (const { scenario, error } of backgroundErrors) {
    targetLines.push(`⚠ unhandled rejection during ${scenario}: ${error.split('\n')[0]}`);
  }
  write(
    `\nPostbox bench — ${subtitle}\n\n${table}\n\n${targetLines.join('\n')}\n\n` +
      `wall time ${wallSeconds}s · ${jsonPath} · ${svgPath}\n`,
  );
  return { jsonPath, svgPath, table, report, failed };
}
