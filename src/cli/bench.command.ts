import { existsSync } from 'node:fs';
import type { Command } from 'commander';

/** Options of `postbox bench`, as commander parses them. */
interface BenchFlags {
  quick?: boolean;
  scale: number;
  databaseUrl?: string;
  out: string;
  name?: string;
  only?: string;
  progress: boolean;
  peers?: boolean;
}

/**
 * `postbox bench`: throughput and latency side by side with the physical limit and the naive design, in
 * one run on one server. The bench code lives in `bench/` and is loaded only when this command runs.
 */
export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description(
      'measure append, drain, latency and NOTIFY cost against the raw limit and one-job-per-event, on a fresh database',
    )
    .option('--quick', 'smoke run: short rounds and small backlogs (under 2 minutes)')
    .option('--scale <factor>', 'multiply every duration and backlog size', parseScale, 1)
    .option(
      '--database-url <url>',
      'run on this server, creating and dropping databases of its own (needs CREATEDB); default: a fresh embedded Postgres',
    )
    .option('--out <dir>', 'directory for <timestamp>.json and .svg', 'bench/results')
    .option('--name <name>', 'file name of the results, without extension (default: the start time)')
    .option(
      '--only <keys>',
      'comma-separated scenario keys: baseline,append,drain,latency,graphql_shop,subscriptions,notify,webhook,broker',
    )
    .option(
      '--peers',
      'compare with Emmett, pg-boss and graphile-worker instead (scenarios append,drain,sustained,latency)',
    )
    .option('--no-progress', 'no progress output')
    .action(async (flags: BenchFlags) => {
      const runBench = await loadBench();
      const outcome = await runBench({
        quick: flags.quick ?? false,
        scale: flags.scale,
        outDir: flags.out,
        progress: flags.progress,
        peers: flags.peers ?? false,
        ...(flags.databaseUrl ? { databaseUrl: flags.databaseUrl } : {}),
        ...(flags.name ? { name: flags.name } : {}),
        ...(flags.only ? { only: flags.only.split(',').map((key) => key.trim()) } : {}),
      });
      if (outcome.failed.length > 0) {
        process.stderr.write(`postbox bench: scenario(s) failed: ${outcome.failed.join(', ')}\n`);
        process.exitCode = 1;
      }
    });
}

/** What the command needs of bench/run.ts (kept structural: the benchmark is not part of the package). */
type RunBench = (options: {
  quick: boolean;
  scale: number;
  outDir: string;
  progress: boolean;
  peers: boolean;
  databaseUrl?: string;
  name?: string;
  only?: string[];
}) => Promise<{ failed: readonly string[] }>;

/**
 * The benchmark lives in the repository's bench/, which the package does not ship: the path is computed so
 * that the compiled CLI does not depend on it, and an installed copy says where to run it instead.
 */
async function loadBench(): Promise<RunBench> {
  const candidates = ['../../bench/run.ts', '../../bench/run.js'].map(
    (file) => new URL(file, import.meta.url),
  );
  const found = candidates.find((url) => existsSync(url));
  if (!found) {
    throw new Error(
      'postbox bench runs from a checkout of the Postbox repository (bench/ is not in the package)',
    );
  }
  return ((await import(found.href)) as { runBench: RunBench }).runBench;
}

function parseScale(value: string): number {
  const scale = Number(value);
  if (!(scale > 0)) throw new Error(`--scale must be a positive number, not "${value}"`);
  return scale;
}
