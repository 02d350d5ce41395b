import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeCode, describeMachine } from './lib/machine.js';
import { startBenchServer } from './lib/server.js';
import { makePlan } from './plan.js';
import { renderChart } from './report/chart.js';
import { startProgress } from './report/progress.js';
import { renderTable } from './report/table.js';
import { scenarios as allScenarios } from './scenarios/index.js';
/**
 * Runs the bench: one fresh server (embedded unless `databaseUrl`), one fresh database per scenario, every
 * scenario in order; then writes the JSON and the SVG and prints the table.
 */
export async function runBench(options = {}) {
  const write = options.write ?? ((text) => process.stdout.write(text));
  const plan = makePlan(options.quick ?? false, options.scale ?? 1);
  const startedAt = new Date();
  const name = options.name ?? `${startedAt.toISOString().slice(0, 19).replace(/:/g, '-')}Z`;
  const outDir = path.resolve(options.outDir ?? 'bench/results');
  const modules = [...allScenarios, ...(options.extraScenarios ?? [])];
  const known = new Set(modules.flatMap((module) => module.keys));
  for (const key of options.only ?? []) {
    if (!known.has(key)) throw new Error(`Unknown scenario "${key}"; known: ${[...known].join(', ')}`);
  }
  const selected = (module) => !options.only || module.keys.some((key) => options.only?.includes(key));
  const machine = describeMachine();
  const code = await describeCode();
  const server = await startBenchServer(options.databaseUrl);
  const progress = startProgress(
    modules.filter(selected).reduce((sum, module) => sum + module.steps(plan), 0),
    options.progress ?? true,
  );
  const sections = {};
  const rows = [];
  const bars = [];
  const latency = [];
  const targets = [];
  const failed = [];
  const timings = {};
  let postgres;
  // A rejection nobody handles, in the engine's or a library's background work, would end the process
  // and lose every figure measured so far. It is recorded with the scenario that was running instead,
  // and printed with the table: a correctness problem to fix, not a reason to lose the run.
  const backgroundErrors = [];
  let currentScenario = 'setup';
  const listener = (reason) => {
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
        rows.push({
          scenario: module.title,
          figure: '',
          median: 'failed',
          spread: message.slice(0, 60),
          ratio: '',
          target: '',
        });
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
  const table = renderTable(rows);
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
//# sourceMappingURL=run.js.map
