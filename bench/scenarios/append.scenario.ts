import type pg from 'pg';
import { createDb } from '../../src/engine/db/database.ts';
import { round, type Summary, summarize } from '../lib/stats.ts';
import { appendOrderTransaction, rawOrderTransaction, runClosedLoop } from '../lib/workload.ts';
import { formatCount, formatPercent, formatSpread, formatTarget } from '../report/format.ts';
import type { ScenarioModule, TableRow, TargetCheck, ThroughputBar } from '../scenario.ts';

/** Append throughput must stay at or above this share of the baseline at every concurrency. */
const APPEND_TARGET = 0.85;

/** Figures of one concurrency. */
interface Pair {
  baseline: number[];
  append: number[];
  /** append / baseline of the same round. */
  ratio: number[];
}

/**
 * Scenarios 1 and 2, measured together on one database: the raw transaction (the limit) and the same
 * work through `appendEvents`, in interleaved rounds (baseline, append, append, baseline, …) of equal
 * duration at each concurrency, so drift of the machine falls on both alike. The ratio is taken per round
 * pair, then its median.
 *
 * The relay is marked awake (`outbox.relay_sleeping` = 0) for the whole scenario: that is the state a loaded
 * system is in (the wake-up trigger then runs its check and sends no NOTIFY). The NOTIFY cost itself is
 * scenario 7.
 */
export const appendScenario: ScenarioModule = {
  keys: ['baseline', 'append'],
  title: 'Baseline vs append',
  steps: (plan) => plan.concurrencies.length * (1 + plan.append.rounds),
  async run({ server, plan, progress }) {
    const database = await server.createDatabase('append');
    try {
      const setup = database.pool(1);
      await setup.query(`select setval('outbox.relay_sleeping', 0)`);
      await setup.end();

      const pairs = new Map<number, Pair>();
      for (const concurrency of plan.concurrencies) {
        const rawPool = database.pool(concurrency);
        const appendPool = database.pool(concurrency);
        const db = createDb(appendPool);
        const raw = () => rawOrderTransaction(rawPool);
        const append = () => appendOrderTransaction(db);
        await openConnections(rawPool, concurrency);
        await openConnections(appendPool, concurrency);

        progress.status(`c=${concurrency} warm-up`);
        await runClosedLoop(concurrency, plan.append.warmupSeconds, raw);
        await runClosedLoop(concurrency, plan.append.warmupSeconds, append);
        progress.step(`c=${concurrency} warm-up`);

        const pair: Pair = { baseline: [], append: [], ratio: [] };
        for (let r = 0; r < plan.append.rounds; r++) {
          progress.status(`c=${concurrency} round ${r + 1}/${plan.append.rounds}`);
          // Alternate which goes first: the second of a pair always runs on a slightly fuller table.
          let baselineRate: number;
          let appendRate: number;
          if (r % 2 === 0) {
            baselineRate = (await runClosedLoop(concurrency, plan.append.roundSeconds, raw)).rate;
            appendRate = (await runClosedLoop(concurrency, plan.append.roundSeconds, append)).rate;
          } else {
            appendRate = (await runClosedLoop(concurrency, plan.append.roundSeconds, append)).rate;
            baselineRate = (await runClosedLoop(concurrency, plan.append.roundSeconds, raw)).rate;
          }
          pair.baseline.push(baselineRate);
          pair.append.push(appendRate);
          pair.ratio.push(appendRate / baselineRate);
          progress.step(`c=${concurrency} round ${r + 1}`);
        }
        pairs.set(concurrency, pair);
        await appendPool.end();
        await rawPool.end();
      }

      const baselineSection: Record<string, unknown> = {};
      const appendSection: Record<string, unknown> = {};
      const rows: TableRow[] = [];
      const bars: ThroughputBar[] = [];
      const targets: TargetCheck[] = [];
      let capacity = 0;
      for (const [concurrency, pair] of pairs) {
        const baseline = summarize(pair.baseline);
        const append = summarize(pair.append);
        const ratio = summarize(pair.ratio);
        capacity = Math.max(capacity, append.median);
        baselineSection[String(concurrency)] = roundSummary(baseline);
        appendSection[String(concurrency)] = {
          ...roundSummary(append),
          ratioToBaseline: roundSummary(ratio, 3),
        };
        rows.push({
          scenario: `1 Baseline c=${concurrency}`,
          figure: 'tx/s',
          median: formatCount(baseline.median),
          spread: formatSpread(baseline),
          ratio: '',
          target: '',
        });
        const met = ratio.median >= APPEND_TARGET;
        rows.push({
          scenario: `2 Append c=${concurrency}`,
          figure: 'events/s',
          median: formatCount(append.median),
          spread: formatSpread(append),
          ratio: `${formatPercent(ratio.median)} of (1)`,
          target: formatTarget(met, `≥ ${formatPercent(APPEND_TARGET)}`),
        });
        bars.push(
          {
            group: 'Baseline vs append',
            label: `baseline c=${concurrency}`,
            unit: 'tx/s',
            ...minMax(baseline),
          },
          {
            group: 'Baseline vs append',
            label: `append c=${concurrency}`,
            unit: 'events/s',
            ...minMax(append),
          },
        );
        targets.push({
          name: `append ≥ ${formatPercent(APPEND_TARGET)} of baseline at c=${concurrency}`,
          target: `≥ ${APPEND_TARGET}`,
          actual: ratio.median.toFixed(3),
          met,
        });
      }
      return {
        results: {
          baseline: {
            status: 'ok',
            unit: 'tx/s',
            transaction: 'BEGIN; INSERT bench.orders; INSERT bench.outbox_raw; COMMIT (pg, no Postbox code)',
            roundSeconds: plan.append.roundSeconds,
            byConcurrency: baselineSection,
          },
          append: {
            status: 'ok',
            unit: 'events/s',
            transaction: 'BEGIN; INSERT bench.orders; appendEvents(OrderPlaced); COMMIT (Kysely)',
            roundSeconds: plan.append.roundSeconds,
            byConcurrency: appendSection,
            /** The best median over the concurrencies: what the latency scenario loads against. */
            capacity: Math.round(capacity),
            target: APPEND_TARGET,
          },
        },
        rows,
        bars,
        targets,
      };
    } finally {
      await database.drop();
    }
  },
};

/** Opens `count` connections up front, so no round pays for connecting. */
export async function openConnections(pool: pg.Pool, count: number): Promise<void> {
  const clients = await Promise.all(Array.from({ length: count }, () => pool.connect()));
  for (const client of clients) client.release();
}

/** A summary with readable numbers for the JSON. */
export function roundSummary(summary: Summary, digits = 1): Summary {
  return {
    median: round(summary.median, digits),
    min: round(summary.min, digits),
    max: round(summary.max, digits),
    mean: round(summary.mean, digits),
    spreadPct: round(summary.spreadPct, 1),
    rounds: summary.rounds.map((value) => round(value, digits)),
  };
}

/** The chart's view of a summary. */
export function minMax(summary: Summary): { median: number; min: number; max: number } {
  return { median: summary.median, min: summary.min, max: summary.max };
}
