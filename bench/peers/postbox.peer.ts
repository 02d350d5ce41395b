import { CompiledQuery, sql } from 'kysely';
// The library's public entry point (what an application imports as `postbox`), not engine internals.
import {
  appendEvents,
  createDb,
  defineConsumer,
  type Postbox,
  startPostbox,
} from '../../src/engine/index.ts';
import { OrderPlaced } from '../lib/workload.ts';
import { installedVersion, type PeerEvent, type PeerInstance, type PeerSystem } from './system.ts';

/** Partitions of the bench consumer: events of one stream stay in order, streams spread over these. */
const PARTITIONS = 8;

const newEvent = (event: PeerEvent) =>
  OrderPlaced.create(event.streamId, event.order.payload, { id: event.eventId });

/**
 * Postbox through its library API: `appendEvents` on a client of the application's own `pg.Pool` inside
 * the app's `BEGIN … COMMIT` (and, as an extra append row, on the engine's `createDb` Kysely whose
 * statements run prepared); one consumer started with `startPostbox` (defaults, 8 partitions), whose
 * handler runs the effect statement in the delivery transaction (committed with its checkpoint).
 */
export const postboxPeer: PeerSystem = {
  key: 'postbox',
  label: 'Postbox',
  version: `postbox ${installedVersion('.')} (this checkout)`,
  ordered: true,
  needsPostboxSchema: true,
  settings: {
    consumer: { partitions: PARTITIONS, batchSize: 100, startFrom: 'beginning' },
    engine: 'startPostbox defaults (pollIntervalMs 2000, relay hand-off, NOTIFY only while the relay sleeps)',
    concurrency: 'the scenario concurrency (8)',
  },
  async setup(database, { concurrency }) {
    const internalPool = database.pool(16);
    const internalDb = createDb(internalPool);
    const consumerPool = database.pool(concurrency + 4);
    let postbox: Postbox | undefined;
    const instance: PeerInstance = {
      appendInTransaction: async (client, event) => {
        await appendEvents(client, [newEvent(event)]);
      },
      extraAppends: [
        {
          key: 'postbox_internal',
          label: "Postbox, engine's prepared pool",
          run: (event) =>
            internalDb.transaction().execute(async (trx) => {
              await sql`insert into bench.orders (id, customer_id, total_cents)
                        values (${event.order.orderId}, ${event.order.customerId}, ${event.order.totalCents})`.execute(
                trx,
              );
              await appendEvents(trx, [newEvent(event)]);
            }),
        },
      ],
      async fill(events) {
        // One transaction per stream (all its events in one appendEvents call), 4 at a time.
        const byStream = new Map<string, PeerEvent[]>();
        for (const event of events)
          byStream.set(event.streamId, [...(byStream.get(event.streamId) ?? []), event]);
        const groups = [...byStream.values()];
        const worker = async () => {
          for (let group = groups.pop(); group; group = groups.pop()) {
            const current = group;
            await internalDb.transaction().execute((trx) => appendEvents(trx, current.map(newEvent)));
          }
        };
        await Promise.all(Array.from({ length: 4 }, worker));
      },
      async startConsumer(recorder) {
        const consumer = defineConsumer({
          name: 'bench-peer',
          on: [OrderPlaced],
          partitions: PARTITIONS,
          async handle(event, trx) {
            const effect = recorder.start({
              eventId: event.id,
              streamId: event.streamId,
              version: event.streamVersion,
            });
            await trx.executeQuery(CompiledQuery.raw(effect.text, effect.values));
          },
        });
        postbox = await startPostbox({
          pool: consumerPool,
          consumers: [consumer],
          // The bench records unhandled rejections itself (bench/run.ts).
          guardWorkerRejections: false,
          concurrency,
        });
      },
      async stopConsumer() {
        await postbox?.stop();
        postbox = undefined;
      },
      async teardown() {
        // The pools are the database's: the bench ends them when it drops it.
        await postbox?.stop();
        postbox = undefined;
      },
    };
    return instance;
  },
};
