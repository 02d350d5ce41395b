import { makeWorkerUtils, type Runner, run } from 'graphile-worker';
import { quietWorkerLogger } from '../lib/engine.ts';
import { eventPayload, installedVersion, type PeerSystem } from './system.ts';

const TASK = 'bench_effect';

/** The event's coordinates as the job payload carries them. */
interface JobData {
  readonly eventId: string;
  readonly streamId: string;
  readonly version: number;
}

/**
 * graphile-worker's fast settings from its docs ("Performance"): a local queue that fetches jobs in
 * batches (`localQueue.size`) and batched completion (`completeJobBatchDelay` / `failJobBatchDelay`).
 * Known costs, measured before (PERF-NOTES): some jobs start one `pollInterval` late, and the local queue
 * drops the serial guarantee of named queues (graphile/worker#621) — so no ordering is asked of it here.
 */
const WORKER_PRESET = { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 };
const POLL_INTERVAL_MS = 2000;

/**
 * graphile-worker: `graphile_worker.add_job` in the app's transaction, one job per event (its trigger
 * NOTIFYs the workers at commit); a runner with the fast preset whose task inserts the effect with
 * `helpers.query` (graphile-worker completes jobs separately from what a task writes).
 */
export const graphileWorkerPeer: PeerSystem = {
  key: 'graphile_worker',
  label: 'graphile-worker',
  version: `graphile-worker ${installedVersion('graphile-worker')}`,
  ordered: false,
  settings: {
    append: "select graphile_worker.add_job('bench_effect', payload) in the app transaction",
    worker: { ...WORKER_PRESET, pollInterval: POLL_INTERVAL_MS, concurrency: 'the scenario concurrency (8)' },
  },
  async setup(database, { concurrency }) {
    const pool = database.pool(concurrency + 4);
    // Installs (or checks) the graphile_worker schema before the first add_job.
    const utils = await makeWorkerUtils({ pgPool: pool, logger: quietWorkerLogger });
    await utils.migrate();
    let runner: Runner | undefined;
    const stop = async () => {
      const current = runner;
      runner = undefined;
      await current?.stop();
    };
    return {
      async appendInTransaction(client, event) {
        await client.query('select graphile_worker.add_job($1, $2::json)', [
          TASK,
          JSON.stringify(eventPayload(event)),
        ]);
      },
      async fill(events) {
        for (let from = 0; from < events.length; from += 10_000) {
          await utils.addJobs(
            events
              .slice(from, from + 10_000)
              .map((event) => ({ identifier: TASK, payload: eventPayload(event) })),
          );
        }
      },
      async startConsumer(recorder) {
        runner = await run({
          pgPool: pool,
          concurrency,
          noHandleSignals: true,
          pollInterval: POLL_INTERVAL_MS,
          logger: quietWorkerLogger,
          preset: { worker: WORKER_PRESET },
          taskList: {
            [TASK]: async (payload, helpers) => {
              const effect = recorder.start(payload as JobData);
              await helpers.query(effect.text, effect.values);
            },
          },
        });
      },
      stopConsumer: stop,
      async teardown() {
        await stop();
        await utils.release();
      },
    };
  },
};
