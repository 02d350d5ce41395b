import type { BenchPlan } from './scenario.ts';

/**
 * The full run (≈ 8 minutes on 2 cores) or the `--quick` smoke run (≈ 1 minute); `scale` multiplies every
 * duration and backlog size (e.g. `0.05` for a test that only checks the bench completes).
 */
export function makePlan(quick: boolean, scale = 1): BenchPlan {
  if (!(scale > 0)) throw new Error(`--scale must be a positive number (got ${scale})`);
  const seconds = (value: number) => Math.max(0.3, Math.round(value * scale * 100) / 100);
  const events = (value: number) => Math.max(500, Math.round((value * scale) / 100) * 100);
  const rounds = (value: number) => Math.max(1, value);
  return quick
    ? {
        mode: 'quick',
        scale,
        concurrencies: [1, 4, 16],
        append: { warmupSeconds: seconds(0.5), roundSeconds: seconds(1.5), rounds: rounds(2) },
        drain: {
          events: events(10_000),
          rounds: rounds(2),
          naiveMaxSeconds: seconds(4),
          concurrency: 8,
          partitions: 8,
        },
        latency: { loads: [0.25, 0.75], warmupSeconds: seconds(1), seconds: seconds(5), producers: 16 },
        notify: {
          concurrency: 16,
          warmupSeconds: seconds(0.5),
          roundSeconds: seconds(1.5),
          rounds: rounds(2),
        },
      }
    : {
        mode: 'full',
        scale,
        concurrencies: [1, 4, 16],
        append: { warmupSeconds: seconds(2), roundSeconds: seconds(3), rounds: rounds(5) },
        drain: {
          events: events(100_000),
          rounds: rounds(3),
          naiveMaxSeconds: seconds(20),
          concurrency: 8,
          partitions: 8,
        },
        latency: { loads: [0.25, 0.75], warmupSeconds: seconds(3), seconds: seconds(20), producers: 16 },
        notify: { concurrency: 16, warmupSeconds: seconds(2), roundSeconds: seconds(3), rounds: rounds(4) },
      };
}
