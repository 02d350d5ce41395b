import { defineConsumer } from '../../src/engine/consumers/consumer.js';
import { createDb } from '../../src/engine/db/database.js';
import { startPostbox } from '../../src/engine/postbox.js';
import { summarize } from '../lib/stats.js';
import { appendOrderTransaction, OrderPlaced, runClosedLoop } from '../lib/workload.js';
import { formatCount, formatPercent, formatSpread, formatTarget } from '../report/format.js';
import { minMax, openConnections, roundSummary } from './append.scenario.js';

/** The design must change if the wake-ups cost more than this share of append throughput. */
const COST_LIMIT = 0.1;
const VARIANTS = {
  never: { label: 'never', mode: 'never', relay: false },
  always: { label: 'always', mode: 'always', relay: false },
  neverRelay: { label: 'never + relay', mode: 'never', relay: true },
  idleOnlyRelay: { label: 'idle-only (default) + relay', mode: '', relay: true },
};
const ORDER = ['never', 'always', 'neverRelay', 'idleOnlyRelay'];
/**
 * Scenario 7: append throughput at one concurrency with the wake-up NOTIFY forced on every transaction
 * (`always`) or off (`never`) — the raw cost of a NOTIFY — and the engine's default (NOTIFY only while the
 * relay sleeps) with the relay and a no-op consumer running in this process, against `never` under the
 * same running system: the cost of the design as shipped. Interleaved rounds, order rotated per round;
 * each relay round registers a fresh consumer starting `now`, so it delivers only that round's events.
 */
export const notifyScenario = {
  keys: ['notify'],
  title: 'NOTIFY cost',
  steps: (plan) => 1 + plan.notify.rounds,
  async run({ server, plan, progress }) {
    const database = await server.createDatabase('notify');
    const concurrency = plan.notify.concurrency;
    const producers = new Map();
    try {
      for (const variant of ORDER) {
        const mode = VARIANTS[variant].mode;
        const pool = database.pool(concurrency, mode ? { 'postbox.notify': mode } : undefined);
        await openConnections(pool, concurrency);
        const db = createDb(pool);
        producers.set(variant, { run: () => appendOrderTransaction(db), end: () => pool.end() });
      }
      const rates = { never: [], always: [], neverRelay: [], idleOnlyRelay: [] };
      const wakeups = { never: [], always: [], neverRelay: [], idleOnlyRelay: [] };
      let roundNumber = 0;
      const measure = async (variant, seconds) => {
        const spec = VARIANTS[variant];
        const producer = producers.get(variant);
        if (!producer) throw new Error(`no producer for ${variant}`);
        let postbox;
        let received = 0;
        if (spec.relay)
          postbox = await startRelay(database, `bench-notify-${++roundNumber}`, () => received++);
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
        const order = ORDER.map((_, i) => ORDER[(i + r) % ORDER.length]);
        for (const variant of order) {
          progress.status(`round ${r + 1}/${plan.notify.rounds}: ${VARIANTS[variant].label}`);
          const [rate, perThousand] = await measure(variant, plan.notify.roundSeconds);
          rates[variant].push(rate);
          wakeups[variant].push(perThousand);
        }
        progress.step(`round ${r + 1}`);
      }
      const summaries = Object.fromEntries(ORDER.map((v) => [v, summarize(rates[v])]));
      const paired = (a, b) => summarize(rates[a].map((rate, i) => rate / (rates[b][i] ?? Number.NaN)));
      const alwaysVsNever = paired('always', 'never');
      const idleVsNeverRelay = paired('idleOnlyRelay', 'neverRelay');
      const relayVsNoRelay = paired('idleOnlyRelay', 'never');
      const designCost = 1 - idleVsNeverRelay.median;
      const met = designCost <= COST_LIMIT;
      const rows = ORDER.map((variant) => ({
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
/** Postbox with a no-op consumer that starts at the current end of the log. */
async function startRelay(database, name, onWakeup) {
  const pool = database.pool(8 + 4);
  const consumer = defineConsumer({
    name,
    on: [OrderPlaced],
    startFrom: 'now',
    async handle() {},
  });
  const postbox = await startPostbox({
    pool,
    connectionString: database.url,
    consumers: [consumer],
    // The bench records unhandled rejections itself (bench/run.ts) instead of ending the process.
    guardWorkerRejections: false,
    onRelayActivity: (kind) => {
      if (kind === 'wakeup') onWakeup();
    },
  });
  const stop = postbox.stop;
  return {
    ...postbox,
    async stop() {
      await stop();
      await pool.end();
    },
  };
}
//# sourceMappingURL=notify.scenario.js.map
