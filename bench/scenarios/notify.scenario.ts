import { createDb } from '../../src/engine/db/database.ts';
import type { Postbox } from '../../src/engine/postbox.ts';
import { startNoopConsumer } from '../lib/engine.ts';
import { summarize } from '../lib/stats.ts';
import { appendOrderTransaction, runClosedLoop } from '../lib/workload.ts';
import { formatCount, formatPercent, formatSpread, formatTarget } from '../report/format.ts';
import type { ScenarioModule, TableRow } from '../scenario.ts';
import { minMax, openConnections, roundSummary } from './append.scenario.ts';

/** The design must change if the wake-ups cost more than this share of append throughput. */
const COST_LIMIT = 0.1;

type Variant = 'never' | 'always' | 'neverRelay' | 'idleOnlyRelay';

interface VariantSpec {
  readonly label: string;
  /** `postbox.notify` for the producers' sessions ('' = the default, idle-only). */
  readonly mode: '' | 'always' | 'never';
  /** Run Postbox (relay + no-op consumer draining everything) in this process during the round. */
  readonly relay: boolean;
}

const VARIANTS: Record<Variant, VariantSpec> = {
  never: { label: 'never', mode: 'never', relay: false },
  always: { label: 'always', mode: 'always', relay: false },
  neverRelay: { label: 'never + relay', mode: 'never', relay: true },
  idleOnlyRelay: { label: 'idle-only (default) + relay', mode: '', relay: true },
};
const ORDER: readonly Variant[] = ['never', 'always', 'neverRelay', 'idleOnlyRelay'];

/**
 * Scenario 7: append throughput at one concurrency with the wake-up NOTIFY forced on every transaction
 * (`always`) or off (`never`) — the raw cost of a NOTIFY — and the engine's default (NOTIFY only while the
 * relay sleeps) with the relay and a no-op consumer running in this process, against `never` under the
 * same running system: the cost of the design as shipped. Interleaved rounds, order rotated per round;
 * each relay round registers a fresh consumer starting `now`, so it delivers only that round's events.
 */
export const notifyScenario: ScenarioModule = {
  keys: ['notify'],
  title: 'NOTIFY cost',
  steps: (plan) => 1 + plan.notify.rounds,
  async run({ server, plan, progress }) {
    const database = await server.createDatabase('notify');
    const concurrency = plan.notify.concurrency;
    const producers = new Map<Variant, { run: () => Promise<void>; end: () => Promise<void> }>();
    try {
      for (const variant of ORDER) {
        const mode = VARIANTS[variant].mode;
        const pool = database.pool(concurrency, mode ? { 'postbox.notify': mode } : undefined);
        await openConnections(pool, concurrency);
        const db = createDb(pool);
        producers.set(variant, { run: () => appendOrderTransaction(db), end: () => pool.end() });
      }
      const rates: Record<Variant, number[]> = { never: [], always: [], neverRelay: [], idleOnlyRelay: [] };
      const wakeups: Record<Variant, number[]> = { never: [], always: [], neverRelay: [], idleOnlyRelay: [] };
      let roundNumber = 0;
      const measure = async (variant: Variant, seconds: number): Promise<[number, number]> => {
        const spec = VARIANTS[variant];
        const producer = producers.get(variant);
        if (!producer) throw new Error(`no producer for ${variant}`);
        let postbox: Postbox | undefined;
        let received = 0;
        if (spec.relay)
          postbox = await startNoopConsumer(database, `bench-notify-${++roundNumber}`, {
            onWakeup: () => received++,
          });
        try {
          const result = await runClosedLoop(concurrency, seconds, producer.run);
          return [result.rate, (received / Math.max(1, result.completed)) * 1000];
        } finally {
          await postbox?.stop();
        }
      };

      progress.status('warm-up');
      for (const variant of ORDER) await measure(variant, plan.notify.warmupSeconds);
      progress.step('warm-up');
      for (let r = 0; r < plan.notify.rounds; r++) {
        const order = ORDER.map((_, i) => ORDER[(i + r) % ORDER.length] as Variant);
        for (const variant of order) {
          progress.status(`round ${r + 1}/${plan.notify.rounds}: ${VARIANTS[variant].label}`);
          const [rate, perThousand] = await measure(variant, plan.notify.roundSeconds);
          rates[variant].push(rate);
          wakeups[variant].push(perThousand);
        }
        progress.step(`round ${r + 1}`);
      }

      const summaries = Object.fromEntries(ORDER.map((v) => [v, summarize(rates[v])])) as Record<
        Variant,
        ReturnType<typeof summarize>
      >;
      const paired = (a: Variant, b: Variant) =>
        summarize(rates[a].map((rate, i) => rate / (rates[b][i] ?? Number.NaN)));
      const alwaysVsNever = paired('always', 'never');
      const idleVsNeverRelay = paired('idleOnlyRelay', 'neverRelay');
      const relayVsNoRelay = paired('idleOnlyRelay', 'never');
      const designCost = 1 - idleVsNeverRelay.median;
      const met = designCost <= COST_LIMIT;

      const rows: TableRow[] = ORDER.map((variant) => ({
        scenario: `7 NOTIFY ${VARIANTS[variant].label} c=${concurrency}`,
        figure: 'events/s',
        median: formatCount(summaries[variant].median),
        spread: formatSpread(summaries[variant]),
        ratio:
          variant === 'always'
            ? `${formatPercent(alwaysVsNever.median)} of never`
            : variant === 'idleOnlyRelay'
              ? `${formatPercent(idleVsNeverRelay.median)} of never+relay`
              : variant === 'neverRelay'
                ? `${formatPercent(paired('neverRelay', 'never').median)} of never`
                : '',
        target: variant === 'idleOnlyRelay' ? formatTarget(met, 'cost ≤ 10%') : '',
      }));
      return {
        results: {
          notify: {
            status: 'ok',
            unit: 'events/s',
            concurrency,
            roundSeconds: plan.notify.roundSeconds,
            variants: Object.fromEntries(
              ORDER.map((variant) => [
                variant,
                {
                  ...VARIANTS[variant],
                  ...roundSummary(summaries[variant]),
                  relayWakeupsPer1000Tx: wakeups[variant].map((value) => Math.round(value)),
                },
              ]),
            ),
            ratios: {
              alwaysToNever: roundSummary(alwaysVsNever, 3),
              idleOnlyRelayToNeverRelay: roundSummary(idleVsNeverRelay, 3),
              idleOnlyRelayToNeverWithoutRelay: roundSummary(relayVsNoRelay, 3),
            },
            designCost: Number(designCost.toFixed(3)),
            costLimit: COST_LIMIT,
          },
        },
        rows,
        bars: ORDER.map((variant) => ({
          group: `NOTIFY cost (c=${concurrency})`,
          label: VARIANTS[variant].label,
          unit: 'events/s',
          ...minMax(summaries[variant]),
        })),
        targets: [
          {
            name: 'idle-only NOTIFY costs ≤ 10% of append throughput under load',
            target: `≤ ${COST_LIMIT}`,
            actual: designCost.toFixed(3),
            met,
          },
        ],
      };
    } finally {
      for (const producer of producers.values()) await producer.end().catch(() => undefined);
      await database.drop();
    }
  },
};
