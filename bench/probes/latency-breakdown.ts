/**
 * Where commit → handler time goes, one event at a time: a writer commits one event, waits until its
 * handler started, pauses `gapMs` (long enough for the relay to fall asleep, or not), and repeats. Each
 * event's time is split at the engine's own observable events: the relay's wake-up (the NOTIFY arrived),
 * its scan (read the log, handed the partition to a drain), and the handler's start (the drain's BEGIN,
 * partition lock and batch read done). For issue 18's latency gap to a one-job-per-event queue:
 *   node bench/probes/latency-breakdown.ts [events=300] [gapMs=20] [--database-url URL]
 */
import { defineConsumer } from '../../src/engine/consumers/consumer.ts';
import { createDb } from '../../src/engine/db/database.ts';
import { startPostbox } from '../../src/engine/postbox.ts';
import { probeArgs } from '../lib/probe-args.ts';
import { startBenchServer } from '../lib/server.ts';
import { percentiles } from '../lib/stats.ts';
import { appendOrderTransaction, OrderPlaced } from '../lib/workload.ts';

const {
  databaseUrl,
  values: [events, gapMs],
} = probeArgs([300, 20]);

const server = await startBenchServer(databaseUrl);
const database = await server.createDatabase('latency_breakdown');
const writerPool = database.pool(1);
const db = createDb(writerPool);
const enginePool = database.pool(12);

let started: (() => void) | undefined;
let wokeAt: number | undefined;
let scannedAt: number | undefined;
const postbox = await startPostbox({
  pool: enginePool,
  consumers: [
    defineConsumer({
      name: 'breakdown',
      on: [OrderPlaced],
      startFrom: 'now',
      async handle() {
        started?.();
      },
    }),
  ],
  guardWorkerRejections: false,
});
postbox.events.on('relay', ({ kind }) => {
  if (kind === 'wakeup') wokeAt ??= performance.now();
  if (kind === 'scan') scannedAt ??= performance.now();
});

const parts = {
  total: [] as number[],
  toWake: [] as number[],
  toScan: [] as number[],
  toHandler: [] as number[],
};
let asleep = 0;
for (let i = 0; i < events + 20; i++) {
  const handled = new Promise<number>((resolve) => {
    started = () => resolve(performance.now());
  });
  let committedAt = 0;
  wokeAt = undefined;
  scannedAt = undefined;
  await appendOrderTransaction(db, () => {
    committedAt = performance.now();
  });
  const handlerAt = await handled;
  await new Promise((resolve) => setTimeout(resolve, gapMs));
  if (i < 20) continue; // warm-up
  parts.total.push(handlerAt - committedAt);
  // A wake-up or scan seen before the commit returned belongs to this event too (the NOTIFY can beat the
  // COMMIT's answer): clamp at 0.
  const scanned = scannedAt ?? handlerAt;
  if (wokeAt !== undefined) {
    asleep++;
    parts.toWake.push(Math.max(0, wokeAt - committedAt));
    parts.toScan.push(Math.max(0, scanned - Math.max(wokeAt, committedAt)));
  } else {
    parts.toScan.push(Math.max(0, scanned - committedAt));
  }
  parts.toHandler.push(Math.max(0, handlerAt - Math.max(scanned, committedAt)));
}
const line = (label: string, values: number[]) => {
  const p = percentiles(values);
  process.stdout.write(
    `${label.padEnd(34)} p50 ${p.p50.toFixed(2)} · p95 ${p.p95.toFixed(2)} · p99 ${p.p99.toFixed(2)} ms (n=${values.length})\n`,
  );
};
process.stdout.write(`${events} events, ${gapMs} ms apart; relay asleep at commit for ${asleep}\n`);
line('commit → handler start', parts.total);
line('commit → NOTIFY at the relay', parts.toWake);
line('wake-up (or commit) → scan done', parts.toScan);
line('scan done → handler start', parts.toHandler);
await postbox.stop();
await enginePool.end();
await writerPool.end();
await database.drop();
await server.stop();
