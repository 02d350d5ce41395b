import type { BenchPlan } from './scenario.ts';

/**
 * The full run (≈ 10 minutes on 2 cores) or the `--quick` smoke run (≈ 2 minutes; with `--peers`, the
 * peer comparison: ≈ 25 minutes full on 2 quiet cores, 2–4 quick on 2 shared cores); `scale` multiplies every
 * duration and backlog size (e.g. `0.05` for a test that only checks the bench completes). Client counts
 * and rates (concurrencies, the paced order rate, the subscriber counts, subscription write rates) are not
 * scaled: they are what the scenarios are about.
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
        shop: {
          pacedRate: 10,
          concurrencies: [8, 32],
          warmupSeconds: seconds(1),
          seconds: seconds(2),
          catchUpSeconds: 30,
        },
        webhook: {
          events: events(2000),
          streams: 200,
          latencySeconds: seconds(3),
          outageSeconds: seconds(5),
        },
        broker: { events: events(2000), streams: 200, latencySeconds: seconds(2) },
        peers: {
          rounds: 1,
          consumerConcurrency: 8,
          append: { concurrencies: [1, 4, 16], warmupSeconds: seconds(0.3), roundSeconds: seconds(0.5) },
          drain: { events: events(1_500), streams: 100, maxSeconds: 8 },
          sustained: { writers: 8, streamsPerWriter: 20, seconds: seconds(2), settleSeconds: 4 },
          latency: {
            rate: 200,
            warmupSeconds: seconds(0.5),
            seconds: seconds(2),
            maxInFlight: 16,
            settleSeconds: 4,
          },
        },
        subscriptions: {
          sse: 100,
          websocket: 100,
          rates: [20],
          warmupSeconds: seconds(1),
          seconds: seconds(3),
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
        shop: {
          pacedRate: 10,
          concurrencies: [8, 32],
          warmupSeconds: seconds(2),
          seconds: seconds(10),
          catchUpSeconds: 60,
        },
        webhook: {
          events: events(20_000),
          streams: 200,
          latencySeconds: seconds(10),
          outageSeconds: seconds(30),
        },
        broker: { events: events(20_000), streams: 500, latencySeconds: seconds(10) },
        peers: {
          rounds: rounds(3),
          consumerConcurrency: 8,
          append: { concurrencies: [1, 4, 16], warmupSeconds: seconds(1), roundSeconds: seconds(3) },
          drain: { events: events(50_000), streams: 1_000, maxSeconds: 120 },
          sustained: { writers: 8, streamsPerWriter: 50, seconds: seconds(20), settleSeconds: 30 },
          latency: {
            rate: 200,
            warmupSeconds: seconds(2),
            seconds: seconds(15),
            maxInFlight: 16,
            settleSeconds: 15,
          },
        },
        subscriptions: {
          sse: 500,
          websocket: 500,
          rates: [50],
          warmupSeconds: seconds(2),
          seconds: seconds(10),
        },
      };
}
