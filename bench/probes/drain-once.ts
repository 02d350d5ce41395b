/**
 * One timed drain of a backlog to a no-op consumer, for profiling the drain (`--cpu-prof`):
 *   node --cpu-prof bench/probes/drain-once.ts [events=50000] [--database-url URL]
 */
import { defineConsumer } from '../../src/engine/consumers/consumer.ts';
import { startPostbox } from '../../src/engine/postbox.ts';
import { fillEventBacklog, settle, waitUntil } from '../lib/engine.ts';
import { probeArgs } from '../lib/probe-args.ts';
import { startBenchServer } from '../lib/server.ts';
import { OrderPlaced } from '../lib/workload.ts';

const {
  databaseUrl,
  values: [events],
} = probeArgs([50_000]);

const server = await startBenchServer(databaseUrl);
const database = await server.createDatabase('drain_once');
const pool = database.pool(12);
await fillEventBacklog(pool, events);
await settle(pool, ['outbox.events', 'outbox.streams']);
let delivered = 0;
const consumer = defineConsumer({
  name: 'bench-noop',
  on: [OrderPlaced],
  partitions: 8,
  async handle() {
    delivered++;
  },
});
const started = performance.now();
const postbox = await startPostbox({
  pool,
  consumers: [consumer],
  guardWorkerRejections: false,
  concurrency: 8,
});
await waitUntil(() => delivered >= events, 600_000);
const seconds = (performance.now() - started) / 1000;
process.stdout.write(
  `${events} events in ${seconds.toFixed(2)} s: ${(events / seconds).toFixed(0)} events/s\n`,
);

await postbox.stop();
await pool.end();
await database.drop();
await server.stop();
