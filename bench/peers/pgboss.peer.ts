import { PgBoss } from 'pg-boss';
import { eventPayload, installedVersion, type PeerEvent, type PeerSystem } from './system.ts';

const QUEUE = 'bench_effects';

interface PgBossPeerOptions {
  readonly key: string;
  readonly label: string;
  /** `standard`, or `key_strict_fifo` (FIFO per `singletonKey`, here the stream id). */
  readonly policy: 'standard' | 'key_strict_fifo';
}

/** The event's coordinates as the job carries them. */
interface JobData {
  readonly eventId: string;
  readonly streamId: string;
  readonly version: number;
}

/**
 * Worker settings to drain fast, from pg-boss's docs (`JobPollingOptions`, `WorkOptions`): batches of 100,
 * keep fetching while batches come back full (`burstWhenBatchFull`, without which a strict-FIFO queue
 * drains at one batch per poll), the shortest allowed poll (0.5 s), and NOTIFY on send so an idle worker
 * wakes at once (`notify` on the queue + `useListenNotify` on the instance).
 */
const WORK_OPTIONS = {
  batchSize: 100,
  burstWhenBatchFull: true,
  pollingIntervalSeconds: 0.5,
  notifyPollingIntervalSeconds: 0.5,
  transactional: true,
} as const;

/**
 * pg-boss: `send` inside the app's transaction through its `db` option (the app's client as an
 * `IDatabase`), one job per event on one queue; workers with `transactional: true`, so the effect
 * statements commit in the transaction pg-boss completes the batch in.
 */
function pgBossPeer(options: PgBossPeerOptions): PeerSystem {
  return {
    key: options.key,
    label: options.label,
    version: `pg-boss ${installedVersion('pg-boss')}`,
    ordered: options.policy === 'key_strict_fifo',
    settings: {
      queue: {
        policy: options.policy,
        notify: true,
        ...(options.policy === 'key_strict_fifo' ? { singletonKey: 'stream id' } : {}),
      },
      instance: { useListenNotify: true, schedule: false, supervise: 'default' },
      work: { ...WORK_OPTIONS, localConcurrency: 'the scenario concurrency (8)' },
    },
    async setup(database, { concurrency }) {
      const boss = new PgBoss({
        connectionString: database.url,
        schema: 'pgboss',
        max: concurrency + 4,
        useListenNotify: true,
        schedule: false,
      });
      // pg-boss emits 'error' for background failures; unlistened, an EventEmitter would throw.
      const errors: unknown[] = [];
      boss.on('error', (error) => errors.push(error));
      await boss.start();
      await boss.createQueue(QUEUE, { policy: options.policy, notify: true });
      const singletonKey = (data: JobData) =>
        options.policy === 'key_strict_fifo' ? { singletonKey: data.streamId } : {};
      let working = false;
      return {
        async appendInTransaction(client, event) {
          const data = eventPayload(event) as unknown as JobData & Record<string, unknown>;
          await boss.send(QUEUE, data, {
            ...singletonKey(data),
            db: { executeSql: (text, values) => client.query(text, values) },
          });
        },
        async fill(events) {
          // pg-boss orders a key's jobs by creation time, and one insert stamps all its jobs with the same
          // now(): so one insert per version (every stream's n-th event), in version order.
          const byVersion = new Map<number, PeerEvent[]>();
          for (const event of events)
            byVersion.set(event.version, [...(byVersion.get(event.version) ?? []), event]);
          for (const version of [...byVersion.keys()].sort((a, b) => a - b)) {
            const layer = byVersion.get(version) ?? [];
            for (let from = 0; from < layer.length; from += 5_000) {
              await boss.insert(
                QUEUE,
                layer.slice(from, from + 5_000).map((event) => {
                  const data = eventPayload(event) as unknown as JobData & Record<string, unknown>;
                  return { data, ...singletonKey(data) };
                }),
              );
            }
          }
        },
        async startConsumer(recorder) {
          working = true;
          const workOptions = { ...WORK_OPTIONS, localConcurrency: concurrency };
          await boss.work<JobData, unknown, typeof workOptions>(QUEUE, workOptions, async (jobs, tx) => {
            for (const job of jobs) {
              const effect = recorder.start(job.data);
              await tx.executeSql(effect.text, effect.values);
            }
          });
        },
        async stopConsumer() {
          if (!working) return;
          working = false;
          await boss.offWork(QUEUE, { wait: true });
        },
        async teardown() {
          await boss.stop({ graceful: true, close: true, timeout: 10_000 });
          if (errors.length > 0)
            throw new Error(`pg-boss reported ${errors.length} error(s): ${String(errors[0])}`);
        },
      };
    },
  };
}

/** pg-boss with a standard queue: no order between jobs. */
export const pgBossStandardPeer = pgBossPeer({
  key: 'pgboss',
  label: 'pg-boss (standard)',
  policy: 'standard',
});

/** pg-boss with its strict FIFO per key policy, the stream id as the key. */
export const pgBossFifoPeer = pgBossPeer({
  key: 'pgboss_fifo',
  label: 'pg-boss (key_strict_fifo)',
  policy: 'key_strict_fifo',
});
