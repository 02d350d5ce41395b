import { makeWorkerUtils, run } from 'graphile-worker';
import { defineConsumer } from '../../src/engine/consumers/consumer.js';
import { startPostbox } from '../../src/engine/postbox.js';
import { fillEventBacklog, quietWorkerLogger, settle, waitUntil } from '../lib/engine.js';
import { round, summarize } from '../lib/stats.js';
import { makeOrder, OrderPlaced } from '../lib/workload.js';
import { formatCount, formatRatio, formatSpread, formatTarget } from '../report/format.js';
import { minMax, roundSummary } from './append.scenario.js';

/** Postbox must drain at least this many times faster than one job per event… */
const RATIO_TARGET = 5;
/** …and at least this fast on the 2-core reference machine. */
const RATE_TARGET = 10_000;
const VARIANTS = ['postbox', 'naive', 'naiveBatched'];
const VARIANT_LABEL = {
  postbox: 'Postbox (8 partitions, batches of 100)',
  naive: 'one graphile-worker job per event (default settings)',
  naiveBatched: 'one job per event, graphile-worker localQueue 500 + batched completion',
};
/**
 * Scenario 3: a backlog of N committed events delivered to a no-op consumer (8 partitions, 8 workers), and
 * the naive design — one graphile-worker job per event, added with `add_jobs`, run by a no-op task at the
 * same concurrency; that design is timed over at most `naiveMaxSeconds` of its backlog. Each round uses a
 * fresh database and rotates the order of the designs. The target
 * compares against graphile-worker's defaults; its batched mode (localQueue + batched completion, which
 * trades away named-queue ordering and adds pickup latency) is reported alongside for context.
 */
export const drainScenario = {
  keys: ['drain'],
  title: 'Drain a backlog',
  steps: (plan) => plan.drain.rounds * VARIANTS.length,
  async run({ server, plan, progress }) {
    const runs = { postbox: [], naive: [], naiveBatched: [] };
    for (let r = 0; r < plan.drain.rounds; r++) {
      const database = await server.createDatabase(`drain_${r + 1}`);
      try {
        const order = VARIANTS.map((_, i) => VARIANTS[(i + r) % VARIANTS.length]);
        for (const variant of order) {
          progress.status(`round ${r + 1}/${plan.drain.rounds}: ${variant}`);
          const result =
            variant === 'postbox'
              ? await drainWithPostbox(database, plan)
              : await drainOneJobPerEvent(database, plan, variant === 'naiveBatched');
          runs[variant].push(result);
          progress.step(`round ${r + 1}: ${variant} ${formatCount(result.rate)}/s`);
        }
      } finally {
        await database.drop();
      }
    }
    const summaries = {
      postbox: summarize(runs.postbox.map((run) => run.rate)),
      naive: summarize(runs.naive.map((run) => run.rate)),
      naiveBatched: summarize(runs.naiveBatched.map((run) => run.rate)),
    };
    // Ratios per round (same database, same minute), then their median.
    const ratio = summarize(runs.postbox.map((run, i) => run.rate / (runs.naive[i]?.rate ?? Number.NaN)));
    const ratioBatched = summarize(
      runs.postbox.map((run, i) => run.rate / (runs.naiveBatched[i]?.rate ?? Number.NaN)),
    );
    const batches = runs.postbox.map((run) => run.batches ?? 0);
    const jobs = runs.postbox.map((run) => run.jobs ?? 0);
    const rateMet = summaries.postbox.median >= RATE_TARGET;
    const ratioMet = ratio.median >= RATIO_TARGET;
    const rows = [
      {
        scenario: '3 Drain: Postbox',
        figure: 'events/s',
        median: formatCount(summaries.postbox.median),
        spread: formatSpread(summaries.postbox),
        ratio: `${formatRatio(ratio.median)} naive`,
        target: `${formatTarget(ratioMet, '≥ 5×')}, ${formatTarget(rateMet, '≥ 10,000/s')}`,
      },
      {
        scenario: '3 Drain: job per event',
        figure: 'events/s',
        median: formatCount(summaries.naive.median),
        spread: formatSpread(summaries.naive),
        ratio: '',
        target: '',
      },
      {
        scenario: '3 Drain: job per event, batched',
        figure: 'events/s',
        median: formatCount(summaries.naiveBatched.median),
        spread: formatSpread(summaries.naiveBatched),
        ratio: `Postbox ${formatRatio(ratioBatched.median)}`,
        target: '(context)',
      },
    ];
    const targets = [
      {
        name: 'drain ≥ 5× one job per event',
        target: `≥ ${RATIO_TARGET}`,
        actual: ratio.median.toFixed(2),
        met: ratioMet,
      },
      {
        name: 'drain ≥ 10,000 events/s',
        target: `≥ ${RATE_TARGET}`,
        actual: String(Math.round(summaries.postbox.median)),
        met: rateMet,
      },
    ];
    return {
      results: {
        drain: {
          status: 'ok',
          unit: 'events/s',
          backlog: plan.drain.events,
          naiveMaxSeconds: plan.drain.naiveMaxSeconds,
          concurrency: plan.drain.concurrency,
          partitions: plan.drain.partitions,
          variants: Object.fromEntries(
            VARIANTS.map((variant) => [
              variant,
              {
                design: VARIANT_LABEL[variant],
                ...roundSummary(summaries[variant]),
                runs: runs[variant].map(roundRun),
              },
            ]),
          ),
          ratioToNaive: roundSummary(ratio, 2),
          ratioToNaiveBatched: roundSummary(ratioBatched, 2),
          postboxBatches: {
            perRound: batches,
            meanEventsPerBatch: round(
              (plan.drain.events * batches.length) /
                Math.max(
                  1,
                  batches.reduce((a, b) => a + b, 0),
                ),
              1,
            ),
            drainJobsPerRound: jobs,
          },
          targets: { ratio: RATIO_TARGET, rate: RATE_TARGET },
        },
      },
      rows,
      bars: VARIANTS.map((variant) => ({
        group: 'Drain a backlog',
        label:
          variant === 'postbox' ? 'Postbox' : variant === 'naive' ? 'job per event' : 'job/event batched',
        unit: 'events/s',
        ...minMax(summaries[variant]),
      })),
      targets,
    };
  },
};
/** Fills the log, then times Postbox delivering all of it to a no-op consumer. */
async function drainWithPostbox(database, plan) {
  const events = plan.drain.events;
  const pool = database.pool(plan.drain.concurrency + 4);
  const fillSeconds = await fillEventBacklog(pool, events);
  await settle(pool, ['outbox.events', 'outbox.streams']);
  let delivered = 0;
  let firstDelivery = 0;
  const transactions = new Set();
  const consumer = defineConsumer({
    name: 'bench-noop',
    on: [OrderPlaced],
    partitions: plan.drain.partitions,
    async handle(_event, trx) {
      if (delivered === 0) firstDelivery = performance.now();
      delivered++;
      transactions.add(trx);
    },
  });
  const started = performance.now();
  const postbox = await startPostbox({
    pool,
    connectionString: database.url,
    consumers: [consumer],
    // The bench records unhandled rejections itself (bench/run.ts) instead of ending the process.
    guardWorkerRejections: false,
    concurrency: plan.drain.concurrency,
  });
  let jobs = 0;
  postbox.runner.events.on('job:start', () => {
    jobs++;
  });
  try {
    await waitUntil(
      () => delivered >= events,
      60_000 + events,
      () => `${delivered} of ${events} delivered`,
    );
  } finally {
    await postbox.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    events,
    seconds,
    rate: events / seconds,
    firstDeliveryMs: firstDelivery - started,
    fillSeconds,
    batches: transactions.size,
    jobs,
  };
}
/**
 * Adds one graphile-worker job per event (not timed), then times a no-op task working through them: the
 * whole backlog, or as many jobs as it runs within `naiveMaxSeconds` (its steady rate on the same backlog).
 */
async function drainOneJobPerEvent(database, plan, batched) {
  const events = plan.drain.events;
  const pool = database.pool(plan.drain.concurrency + 4);
  const fillStarted = performance.now();
  const utils = await makeWorkerUtils({ pgPool: pool, logger: quietWorkerLogger });
  try {
    for (let from = 0; from < events; from += 10_000) {
      const count = Math.min(10_000, events - from);
      await utils.addJobs(
        Array.from({ length: count }, () => ({ identifier: 'bench_noop', payload: makeOrder().payload })),
      );
    }
  } finally {
    await utils.release();
  }
  const fillSeconds = (performance.now() - fillStarted) / 1000;
  await settle(pool, ['graphile_worker._private_jobs']);
  let done = 0;
  let firstDelivery = 0;
  const started = performance.now();
  const runner = await run({
    pgPool: pool,
    concurrency: plan.drain.concurrency,
    noHandleSignals: true,
    pollInterval: 2000,
    logger: quietWorkerLogger,
    taskList: {
      bench_noop: async () => {
        if (done === 0) firstDelivery = performance.now();
        done++;
      },
    },
    ...(batched ? { preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0 } } } : {}),
  });
  const timeBox = plan.drain.naiveMaxSeconds * 1000;
  await waitUntil(() => done >= events || performance.now() - started >= timeBox, timeBox + 60_000);
  const ran = done;
  const seconds = (performance.now() - started) / 1000;
  await runner.stop();
  return {
    events: ran,
    seconds,
    rate: ran / seconds,
    firstDeliveryMs: firstDelivery - started,
    fillSeconds,
    timeBoxed: ran < events,
  };
}
function roundRun(run) {
  return {
    ...run,
    seconds: round(run.seconds, 3),
    rate: round(run.rate, 1),
    firstDeliveryMs: round(run.firstDeliveryMs, 1),
    fillSeconds: round(run.fillSeconds, 2),
  };
}
//# sourceMappingURL=drain.scenario.js.map
