import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { BenchDatabase, BenchServer } from '../lib/server.ts';
import { percentiles, percentilesJson, round, type Summary, summarize } from '../lib/stats.ts';
import { runClosedLoop, runOpenLoop } from '../lib/workload.ts';
import { formatCount, formatMs, formatPercent, formatSpread } from '../report/format.ts';
import type { BenchPlan, ScenarioModule, TableRow } from '../scenario.ts';
import { openConnections, roundSummary } from '../scenarios/append.scenario.ts';
import { peerSystems } from './index.ts';
import {
  businessTransaction,
  type DeliveredEvent,
  EFFECT_SQL,
  EFFECTS_SCHEMA,
  type EffectRecorder,
  type PeerEvent,
  type PeerInstance,
  type PeerSystem,
  rawAppend,
  StreamCursor,
} from './system.ts';

/** What the correctness check found in one system's effect table. */
export interface Correctness {
  /** Effect rows (distinct events handled and committed). */
  readonly effects: number;
  /** Committed events without an effect (after the settle time). */
  readonly lost: number;
  /** Effect inserts beyond the first per event (a handler's work committed twice). */
  readonly duplicates: number;
  /** Consecutive handler starts of one stream whose stream version went down. */
  readonly orderViolations: number;
}

/** The handler side every system shares: start stamps, a global start sequence, the effect statement. */
class Recorder implements EffectRecorder {
  private sequence = 0;
  /** First handler start per event id (`performance.now()`). */
  readonly startedAt = new Map<string, number>();

  start(event: DeliveredEvent) {
    const now = performance.now();
    this.sequence++;
    if (!this.startedAt.has(event.eventId)) this.startedAt.set(event.eventId, now);
    return { text: EFFECT_SQL, values: [event.eventId, event.streamId, event.version, this.sequence] };
  }
}

/** Sets up `system` on a fresh database (with the effect table), runs `body`, tears both down. */
async function withSystem<T>(
  server: BenchServer,
  plan: BenchPlan,
  system: PeerSystem,
  label: string,
  body: (instance: PeerInstance, database: BenchDatabase) => Promise<T>,
): Promise<T> {
  const database = await server.createDatabase(`${label}_${system.key}`, {
    migrate: system.needsPostboxSchema ?? false,
  });
  try {
    const setup = database.pool(1);
    await setup.query(EFFECTS_SCHEMA);
    await setup.end();
    const instance = await system.setup(database, { concurrency: plan.peers.consumerConcurrency });
    try {
      return await body(instance, database);
    } finally {
      await instance.teardown();
    }
  } finally {
    await database.drop();
  }
}

/** Counts the effect rows (the drain and sustained scenarios poll it). */
async function countEffects(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ count: string }>('select count(*)::text as count from bench.effects');
  return Number(rows[0]?.count ?? 0);
}

/** Polls the effect count until it reaches `target` or `maxMs` passed; returns the last count. */
async function waitForEffects(pool: pg.Pool, target: number, maxMs: number): Promise<number> {
  const deadline = performance.now() + maxMs;
  for (;;) {
    const count = await countEffects(pool);
    if (count >= target || performance.now() >= deadline) return count;
    await sleep(50);
  }
}

/** Lost, duplicated and out-of-order effects of `committed` event ids. */
export async function checkEffects(pool: pg.Pool, committed: readonly string[]): Promise<Correctness> {
  const { rows } = await pool.query<{
    event_id: string;
    stream_id: string;
    stream_version: number;
    start_seq: string;
    duplicates: number;
  }>('select event_id::text, stream_id, stream_version, start_seq::text, duplicates from bench.effects');
  const seen = new Set<string>();
  const byStream = new Map<string, Array<{ seq: number; version: number }>>();
  let duplicates = 0;
  for (const row of rows) {
    seen.add(row.event_id);
    duplicates += Number(row.duplicates);
    const list = byStream.get(row.stream_id) ?? [];
    list.push({ seq: Number(row.start_seq), version: Number(row.stream_version) });
    byStream.set(row.stream_id, list);
  }
  let lost = 0;
  for (const id of committed) if (!seen.has(id)) lost++;
  let orderViolations = 0;
  for (const list of byStream.values()) {
    list.sort((a, b) => a.seq - b.seq);
    let highest = 0;
    for (const { version } of list) {
      if (version < highest) orderViolations++;
      highest = Math.max(highest, version);
    }
  }
  return { effects: rows.length, lost, duplicates, orderViolations };
}

/** Sums the correctness findings of several rounds. */
function totalCorrectness(list: readonly Correctness[]): Correctness {
  return list.reduce(
    (sum, c) => ({
      effects: sum.effects + c.effects,
      lost: sum.lost + c.lost,
      duplicates: sum.duplicates + c.duplicates,
      orderViolations: sum.orderViolations + c.orderViolations,
    }),
    { effects: 0, lost: 0, duplicates: 0, orderViolations: 0 },
  );
}

/** "✓ 0 lost · 0 dup · in order", or the failures (order marked "not promised" for unordered systems). */
export function correctnessNote(system: Pick<PeerSystem, 'ordered'>, c: Correctness): string {
  const failures: string[] = [];
  if (c.lost > 0) failures.push(`lost ${formatCount(c.lost)}`);
  if (c.duplicates > 0) failures.push(`dup ${formatCount(c.duplicates)}`);
  if (c.orderViolations > 0) {
    failures.push(`out of order ${formatCount(c.orderViolations)}${system.ordered ? '' : ' (not promised)'}`);
  }
  return failures.length === 0 ? '✓ 0 lost · 0 dup · in order' : `✗ ${failures.join(' · ')}`;
}

/** Correct in the sense of issue 18: nothing lost, nothing twice, every stream in order. */
export function isCorrect(c: Correctness): boolean {
  return c.lost === 0 && c.duplicates === 0 && c.orderViolations === 0;
}

/** The systems in round `r`'s order (rotated, so none always runs first on a cold machine). */
function rotated<T>(list: readonly T[], r: number): T[] {
  return list.map((_, i) => list[(i + r) % list.length] as T);
}

function systemJson(system: PeerSystem) {
  return { label: system.label, version: system.version, ordered: system.ordered, settings: system.settings };
}

/** One append path of the append scenario. */
interface AppendVariant {
  readonly key: string;
  readonly label: string;
  /** A whole business transaction of this variant on `pool` (the app's pool, sized for the concurrency). */
  transaction(pool: pg.Pool, event: PeerEvent): Promise<void>;
}

/**
 * Peers 1: append throughput, closed loop at each concurrency, through the application's own `pg.Pool`
 * (business row + the system's append, COMMIT), every event on a new stream; next to the raw limit (the
 * same business row + one plain row) in the same rounds. All systems are installed first, each on its own
 * database; per round every variant runs once per concurrency, in rotated order. No consumer runs, and
 * Postbox's relay is marked awake (as under load: its wake-up trigger then sends no NOTIFY).
 */
export const peersAppendScenario: ScenarioModule = {
  keys: ['peers_append'],
  title: 'Peers: append',
  steps: (plan) => plan.peers.rounds * plan.peers.append.concurrencies.length,
  async run({ server, plan, progress }) {
    const installed: Array<{ system: PeerSystem; database: BenchDatabase; instance: PeerInstance }> = [];
    try {
      for (const system of peerSystems) {
        progress.status(`installing ${system.label}`);
        const database = await server.createDatabase(`pappend_${system.key}`, {
          migrate: system.needsPostboxSchema ?? false,
        });
        const setup = database.pool(1);
        await setup.query(EFFECTS_SCHEMA);
        if (system.needsPostboxSchema) await setup.query(`select setval('outbox.relay_sleeping', 0)`);
        await setup.end();
        installed.push({
          system,
          database,
          instance: await system.setup(database, { concurrency: plan.peers.consumerConcurrency }),
        });
      }
      const first = installed[0];
      if (!first) throw new Error('no peer systems');
      const variants: Array<AppendVariant & { database: BenchDatabase }> = [
        {
          key: 'raw',
          label: 'raw insert + commit (the limit)',
          database: first.database,
          transaction: (pool, event) => businessTransaction(pool, event, rawAppend),
        },
      ];
      for (const { system, database, instance } of installed) {
        variants.push({
          key: system.key,
          label: system.label,
          database,
          transaction: (pool, event) => businessTransaction(pool, event, instance.appendInTransaction),
        });
        for (const extra of instance.extraAppends ?? []) {
          variants.push({
            key: extra.key,
            label: extra.label,
            database,
            transaction: (_pool, event) => extra.run(event),
          });
        }
      }

      const rates = new Map<string, Map<number, number[]>>(variants.map((v) => [v.key, new Map()]));
      const ratios = new Map<string, Map<number, number[]>>(variants.map((v) => [v.key, new Map()]));
      const failures = new Map<string, number>(variants.map((v) => [v.key, 0]));
      for (let r = 0; r < plan.peers.rounds; r++) {
        for (const concurrency of plan.peers.append.concurrencies) {
          progress.status(`round ${r + 1}/${plan.peers.rounds} c=${concurrency}`);
          const roundRates = new Map<string, number>();
          for (const variant of rotated(variants, r + concurrency)) {
            const pool = variant.database.pool(concurrency);
            await openConnections(pool, concurrency);
            const cursor = new StreamCursor(0);
            const transaction = () => variant.transaction(pool, cursor.nextEvent());
            if (r === 0) await runClosedLoop(concurrency, plan.peers.append.warmupSeconds, transaction);
            const result = await runClosedLoop(concurrency, plan.peers.append.roundSeconds, transaction);
            await pool.end();
            roundRates.set(variant.key, result.rate);
            failures.set(variant.key, (failures.get(variant.key) ?? 0) + result.failed);
            const list = rates.get(variant.key)?.get(concurrency) ?? [];
            list.push(result.rate);
            rates.get(variant.key)?.set(concurrency, list);
          }
          const raw = roundRates.get('raw') ?? Number.NaN;
          for (const variant of variants) {
            const list = ratios.get(variant.key)?.get(concurrency) ?? [];
            list.push((roundRates.get(variant.key) ?? 0) / raw);
            ratios.get(variant.key)?.set(concurrency, list);
          }
          progress.step(`round ${r + 1} c=${concurrency}`);
        }
      }

      const rows: TableRow[] = [];
      const byVariant: Record<string, unknown> = {};
      for (const variant of variants) {
        const byConcurrency: Record<string, unknown> = {};
        for (const concurrency of plan.peers.append.concurrencies) {
          const summary = summarize(rates.get(variant.key)?.get(concurrency) ?? []);
          const ratio = summarize(ratios.get(variant.key)?.get(concurrency) ?? []);
          byConcurrency[String(concurrency)] = {
            ...roundSummary(summary),
            ratioToRaw: roundSummary(ratio, 3),
          };
        }
        const system = installed.find((entry) => entry.system.key === variant.key)?.system;
        byVariant[variant.key] = {
          label: variant.label,
          ...(system ? systemJson(system) : {}),
          failedTransactions: failures.get(variant.key) ?? 0,
          byConcurrency,
        };
      }
      for (const concurrency of plan.peers.append.concurrencies) {
        for (const variant of variants) {
          const summary = summarize(rates.get(variant.key)?.get(concurrency) ?? []);
          const ratio = summarize(ratios.get(variant.key)?.get(concurrency) ?? []);
          const failed = failures.get(variant.key) ?? 0;
          rows.push({
            scenario: `Append c=${concurrency}`,
            figure: `${variant.label} tx/s`,
            median: formatCount(summary.median),
            spread: formatSpread(summary),
            ratio: variant.key === 'raw' ? '' : `${formatPercent(ratio.median)} of raw`,
            target: failed > 0 ? `✗ ${failed} failed transactions (all levels)` : '',
          });
        }
      }
      return {
        results: {
          peers_append: {
            status: 'ok',
            unit: 'tx/s',
            transaction:
              "BEGIN; INSERT bench.orders; <system's append of one event>; COMMIT on a client of the app's own pg.Pool",
            roundSeconds: plan.peers.append.roundSeconds,
            rounds: plan.peers.rounds,
            concurrencies: plan.peers.append.concurrencies,
            variants: byVariant,
          },
        },
        rows,
      };
    } finally {
      for (const { instance, database } of installed) {
        await instance.teardown().catch(() => undefined);
        await database.drop().catch(() => undefined);
      }
    }
  },
};

/** One system's timed drain. */
interface DrainRound {
  readonly events: number;
  readonly delivered: number;
  readonly seconds: number;
  readonly rate: number;
  readonly fillSeconds: number;
  /** Stopped at `maxSeconds` before every effect existed (then `lost` is not counted). */
  readonly timeBoxed: boolean;
  readonly correctness: Correctness;
}

/**
 * Peers 2: a backlog of N events on S streams (N/S versions each), appended through each system's own
 * batch append before its consumer starts; timed from starting the consumer until all N effects exist.
 */
export const peersDrainScenario: ScenarioModule = {
  keys: ['peers_drain'],
  title: 'Peers: drain',
  steps: (plan) => plan.peers.rounds * peerSystems.length,
  async run({ server, plan, progress }) {
    const runs = new Map<string, DrainRound[]>(peerSystems.map((s) => [s.key, []]));
    const { events: total, streams, maxSeconds } = plan.peers.drain;
    for (let r = 0; r < plan.peers.rounds; r++) {
      for (const system of rotated(peerSystems, r)) {
        progress.status(`round ${r + 1}/${plan.peers.rounds}: ${system.label}`);
        const result = await withSystem(
          server,
          plan,
          system,
          `pdrain${r + 1}`,
          async (instance, database) => {
            const cursor = new StreamCursor(streams);
            const events = Array.from({ length: total }, () => cursor.nextEvent());
            const fillStarted = performance.now();
            await instance.fill(events);
            const fillSeconds = (performance.now() - fillStarted) / 1000;
            const pool = database.pool(2);
            await pool.query('checkpoint');
            const started = performance.now();
            await instance.startConsumer(new Recorder());
            const delivered = await waitForEffects(pool, total, maxSeconds * 1000);
            const seconds = (performance.now() - started) / 1000;
            await instance.stopConsumer();
            const timeBoxed = delivered < total;
            const correctness = await checkEffects(
              pool,
              timeBoxed ? [] : events.map((event) => event.eventId),
            );
            return {
              events: total,
              delivered,
              seconds,
              rate: delivered / seconds,
              fillSeconds,
              timeBoxed,
              correctness,
            } satisfies DrainRound;
          },
        );
        runs.get(system.key)?.push(result);
        progress.step(`${system.label} ${formatCount(result.rate)}/s`);
      }
    }
    const rows: TableRow[] = [];
    const bySystem: Record<string, unknown> = {};
    for (const system of peerSystems) {
      const list = runs.get(system.key) ?? [];
      const summary = summarize(list.map((run) => run.rate));
      const correctness = totalCorrectness(list.map((run) => run.correctness));
      const timeBoxed = list.filter((run) => run.timeBoxed).length;
      bySystem[system.key] = {
        ...systemJson(system),
        ...roundSummary(summary),
        correctness,
        correct: isCorrect(correctness),
        runs: list.map((run) => ({
          ...run,
          seconds: round(run.seconds, 3),
          rate: round(run.rate, 1),
          fillSeconds: round(run.fillSeconds, 2),
        })),
      };
      rows.push({
        scenario: `Drain ${formatCount(total)} events / ${formatCount(streams)} streams`,
        figure: `${system.label} events/s`,
        median: formatCount(summary.median),
        spread: formatSpread(summary),
        ratio: timeBoxed > 0 ? `time-boxed at ${maxSeconds}s in ${timeBoxed} round(s)` : '',
        // A time-boxed drain is unfinished: its missing effects are not counted as lost.
        target: `${correctnessNote(system, correctness)}${timeBoxed > 0 ? ' (loss not judged: unfinished)' : ''}`,
      });
    }
    return {
      results: {
        peers_drain: {
          status: 'ok',
          unit: 'events/s',
          events: total,
          streams,
          maxSeconds,
          consumerConcurrency: plan.peers.consumerConcurrency,
          systems: bySystem,
        },
      },
      rows,
    };
  },
};

/** One system's sustained-load round. */
interface SustainedRound {
  readonly seconds: number;
  readonly committed: number;
  readonly failed: number;
  readonly committedRate: number;
  /** Effects that existed at the end of the write window, per second of it. */
  readonly deliveredRate: number;
  /** Committed − effects at the end of the write window. */
  readonly finalLag: number;
  /** How long after the window the last effect appeared (or the settle time, if some never did). */
  readonly settleSeconds: number;
  readonly correctness: Correctness;
}

/**
 * Peers 3: the consumer running while W writers commit flat out for S seconds, each writer on streams of
 * its own (so a stream's versions commit in order); then up to `settleSeconds` for the rest, and the
 * correctness check: committed events without an effect are lost.
 */
export const peersSustainedScenario: ScenarioModule = {
  keys: ['peers_sustained'],
  title: 'Peers: sustained',
  steps: (plan) => plan.peers.rounds * peerSystems.length,
  async run({ server, plan, progress }) {
    const runs = new Map<string, SustainedRound[]>(peerSystems.map((s) => [s.key, []]));
    const { writers, streamsPerWriter, seconds, settleSeconds } = plan.peers.sustained;
    for (let r = 0; r < plan.peers.rounds; r++) {
      for (const system of rotated(peerSystems, r)) {
        progress.status(`round ${r + 1}/${plan.peers.rounds}: ${system.label}`);
        const result = await withSystem(
          server,
          plan,
          system,
          `psustain${r + 1}`,
          async (instance, database) => {
            const countPool = database.pool(1);
            const appPool = database.pool(writers);
            await openConnections(appPool, writers);
            await instance.startConsumer(new Recorder());
            const committed: string[] = [];
            let failed = 0;
            const started = performance.now();
            const deadline = started + seconds * 1000;
            const writer = async () => {
              const cursor = new StreamCursor(streamsPerWriter);
              while (performance.now() < deadline) {
                const event = cursor.nextEvent();
                try {
                  await businessTransaction(appPool, event, instance.appendInTransaction);
                  committed.push(event.eventId);
                } catch {
                  failed++;
                }
              }
            };
            await Promise.all(Array.from({ length: writers }, writer));
            const windowSeconds = (performance.now() - started) / 1000;
            const atEnd = await countEffects(countPool);
            const settleStarted = performance.now();
            await waitForEffects(countPool, committed.length, settleSeconds * 1000);
            const settled = (performance.now() - settleStarted) / 1000;
            await instance.stopConsumer();
            const correctness = await checkEffects(countPool, committed);
            return {
              seconds: windowSeconds,
              committed: committed.length,
              failed,
              committedRate: committed.length / windowSeconds,
              deliveredRate: atEnd / windowSeconds,
              finalLag: committed.length - atEnd,
              settleSeconds: settled,
              correctness,
            } satisfies SustainedRound;
          },
        );
        runs.get(system.key)?.push(result);
        progress.step(`${system.label} ${formatCount(result.deliveredRate)}/s`);
      }
    }
    const rows: TableRow[] = [];
    const bySystem: Record<string, unknown> = {};
    for (const system of peerSystems) {
      const list = runs.get(system.key) ?? [];
      const committed = summarize(list.map((run) => run.committedRate));
      const delivered = summarize(list.map((run) => run.deliveredRate));
      const lag = summarize(list.map((run) => run.finalLag));
      const correctness = totalCorrectness(list.map((run) => run.correctness));
      const failed = list.reduce((sum, run) => sum + run.failed, 0);
      bySystem[system.key] = {
        ...systemJson(system),
        committed: roundSummary(committed),
        delivered: roundSummary(delivered),
        finalLag: roundSummary(lag, 0),
        failedTransactions: failed,
        correctness,
        correct: isCorrect(correctness),
        runs: list.map((run) => ({
          ...run,
          seconds: round(run.seconds, 2),
          committedRate: round(run.committedRate, 1),
          deliveredRate: round(run.deliveredRate, 1),
          settleSeconds: round(run.settleSeconds, 2),
        })),
      };
      const scenario = `${writers} writers × ${seconds}s`;
      rows.push({
        scenario,
        figure: `${system.label} delivered/s`,
        median: formatCount(delivered.median),
        spread: formatSpread(delivered),
        ratio: `committed ${formatCount(committed.median)}/s · lag ${formatCount(lag.median)}`,
        target: correctnessNote(system, correctness) + (failed > 0 ? ` · ${failed} failed tx` : ''),
      });
    }
    return {
      results: {
        peers_sustained: {
          status: 'ok',
          unit: 'events/s',
          writers,
          streamsPerWriter,
          seconds,
          settleSeconds,
          consumerConcurrency: plan.peers.consumerConcurrency,
          systems: bySystem,
        },
      },
      rows,
    };
  },
};

/** One system's latency round. */
interface LatencyRound {
  readonly committed: number;
  readonly missing: number;
  readonly behind: number;
  readonly latency: ReturnType<typeof percentilesJson>;
}

/**
 * Peers 4: commit → handler start at a steady `rate` (open loop, one event per transaction, a new stream
 * each), on one clock: the writer stamps `performance.now()` when COMMIT resolved, the handler stamps its
 * start. After the window, up to `settleSeconds` for the last handlers; events whose handler had not
 * started by then count as missing.
 */
export const peersLatencyScenario: ScenarioModule = {
  keys: ['peers_latency'],
  title: 'Peers: latency',
  steps: (plan) => plan.peers.rounds * peerSystems.length,
  async run({ server, plan, progress }) {
    const runs = new Map<string, LatencyRound[]>(peerSystems.map((s) => [s.key, []]));
    const { rate, warmupSeconds, seconds, maxInFlight, settleSeconds } = plan.peers.latency;
    for (let r = 0; r < plan.peers.rounds; r++) {
      for (const system of rotated(peerSystems, r)) {
        progress.status(`round ${r + 1}/${plan.peers.rounds}: ${system.label}`);
        const result = await withSystem(server, plan, system, `plat${r + 1}`, async (instance, database) => {
          const appPool = database.pool(maxInFlight);
          await openConnections(appPool, maxInFlight);
          const recorder = new Recorder();
          await instance.startConsumer(recorder);
          const cursor = new StreamCursor(0);
          const committedAt = new Map<string, number>();
          let measuring = false;
          const transaction = async () => {
            const event = cursor.nextEvent();
            await businessTransaction(appPool, event, instance.appendInTransaction);
            if (measuring) committedAt.set(event.eventId, performance.now());
          };
          await runOpenLoop({ rate, seconds: warmupSeconds, maxInFlight, transaction });
          measuring = true;
          const loop = await runOpenLoop({ rate, seconds, maxInFlight, transaction });
          measuring = false;
          const waitUntil = performance.now() + settleSeconds * 1000;
          while (
            performance.now() < waitUntil &&
            [...committedAt.keys()].some((id) => !recorder.startedAt.has(id))
          ) {
            await sleep(20);
          }
          await instance.stopConsumer();
          const samples: number[] = [];
          let missing = 0;
          for (const [id, committed] of committedAt) {
            const started = recorder.startedAt.get(id);
            if (started === undefined) missing++;
            else samples.push(started - committed);
          }
          return {
            committed: committedAt.size,
            missing,
            behind: loop.behind,
            latency: percentilesJson(percentiles(samples), 2),
          } satisfies LatencyRound;
        });
        runs.get(system.key)?.push(result);
        progress.step(`${system.label} p50 ${formatMs(result.latency.p50)} ms`);
      }
    }
    const rows: TableRow[] = [];
    const bySystem: Record<string, unknown> = {};
    for (const system of peerSystems) {
      const list = runs.get(system.key) ?? [];
      const p50 = summarize(list.map((run) => run.latency.p50));
      const p99 = summarize(list.map((run) => run.latency.p99));
      const max = summarize(list.map((run) => run.latency.max));
      const committed = list.reduce((sum, run) => sum + run.committed, 0);
      const missing = list.reduce((sum, run) => sum + run.missing, 0);
      bySystem[system.key] = {
        ...systemJson(system),
        p50: roundSummary(p50, 2),
        p99: roundSummary(p99, 2),
        max: roundSummary(max, 2),
        committed,
        missing,
        runs: list,
      };
      rows.push({
        scenario: `Latency at ${rate}/s`,
        figure: `${system.label} commit→handler ms`,
        median: `p50 ${formatMs(p50.median)}`,
        spread: `p99 ${formatMs(p99.median)} · max ${formatMs(max.median)}`,
        ratio: `${formatCount(committed)} events`,
        target:
          missing > 0 ? `✗ ${formatCount(missing)} not handled within ${settleSeconds} s` : '✓ all handled',
      });
    }
    return {
      results: {
        peers_latency: {
          status: 'ok',
          unit: 'ms',
          rate,
          seconds,
          maxInFlight,
          settleSeconds,
          consumerConcurrency: plan.peers.consumerConcurrency,
          systems: bySystem,
        },
      },
      rows,
    };
  },
};

/** One figure of the summary: Postbox's median next to the best peer's. */
interface Comparison {
  readonly figure: string;
  readonly higherIsBetter: boolean;
  readonly postbox: number;
  readonly peers: ReadonlyArray<{
    key: string;
    label: string;
    value: number;
    correct: boolean;
    ordered: boolean;
    note: string;
  }>;
}

/**
 * The final table: Postbox ÷ the best peer for every figure of the scenarios that ran, and ÷ the best peer
 * that was correct (0 lost, 0 duplicates, per-stream order) in the same run. Reads the other peer sections.
 */
export const peersSummaryScenario: ScenarioModule = {
  keys: ['peers_summary'],
  title: 'Peers: Postbox ÷ best peer',
  steps: () => 0,
  async run({ earlier }) {
    const comparisons = summaryComparisons(earlier);
    const rows: TableRow[] = [];
    const json: unknown[] = [];
    for (const comparison of comparisons) {
      const better = (a: number, b: number) => (comparison.higherIsBetter ? a > b : a < b);
      const pick = (list: Comparison['peers']) =>
        list.reduce<Comparison['peers'][number] | undefined>(
          (best, peer) => (best === undefined || better(peer.value, best.value) ? peer : best),
          undefined,
        );
      const best = pick(comparison.peers);
      const bestCorrect = pick(comparison.peers.filter((peer) => peer.correct));
      const ratio = (peer: Comparison['peers'][number] | undefined) =>
        peer && peer.value > 0 ? comparison.postbox / peer.value : Number.NaN;
      const direction = comparison.higherIsBetter
        ? 'higher is better'
        : 'lower is better (< 1× = Postbox faster)';
      const format = (value: number) =>
        comparison.higherIsBetter ? formatCount(value) : `${formatMs(value)} ms`;
      rows.push({
        scenario: comparison.figure,
        figure: direction,
        median: format(comparison.postbox),
        spread: best
          ? `best: ${best.label} ${format(best.value)}${best.correct ? '' : ` (${best.note})`}`
          : 'no peer',
        ratio: `${formatRatio(ratio(best))} best${bestCorrect && bestCorrect !== best ? ` · ${formatRatio(ratio(bestCorrect))} best correct (${bestCorrect.label})` : ''}`,
        target: '',
      });
      json.push({
        figure: comparison.figure,
        higherIsBetter: comparison.higherIsBetter,
        postbox: comparison.postbox,
        bestPeer: best ? { key: best.key, value: best.value, correct: best.correct } : null,
        ratioToBestPeer: round(ratio(best), 3),
        bestCorrectPeer: bestCorrect ? { key: bestCorrect.key, value: bestCorrect.value } : null,
        ratioToBestCorrectPeer: round(ratio(bestCorrect), 3),
        peers: comparison.peers,
      });
    }
    return { results: { peers_summary: { status: 'ok', comparisons: json } }, rows };
  },
};

function formatRatio(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '–';
}

type Section = Record<string, unknown>;

/** The figures the summary compares, read from the sections of the peer scenarios that ran. */
function summaryComparisons(earlier: Readonly<Record<string, Section>>): Comparison[] {
  const comparisons: Comparison[] = [];
  const others = peerSystems.filter((system) => system.key !== 'postbox');
  /** One peer's figure in a comparison. */
  const peerEntry = (system: PeerSystem, value: number, correct: boolean, note: string) => ({
    key: system.key,
    label: system.label,
    value,
    correct,
    ordered: system.ordered,
    note,
  });
  /** A peer's figure judged by that scenario's own correctness check. */
  const judged = (system: PeerSystem, value: number, c: Correctness) =>
    peerEntry(system, value, isCorrect(c), correctnessNote(system, c));
  const append = earlier.peers_append;
  if (append?.status === 'ok') {
    const variants = append.variants as Record<string, { byConcurrency: Record<string, Summary> }>;
    for (const concurrency of append.concurrencies as number[]) {
      const value = (key: string) => variants[key]?.byConcurrency[String(concurrency)]?.median ?? 0;
      comparisons.push({
        figure: `Append c=${concurrency} tx/s (raw ${formatCount(value('raw'))})`,
        higherIsBetter: true,
        postbox: value('postbox'),
        // Append alone checks no delivery: every peer counts as correct here.
        peers: others.map((system) => peerEntry(system, value(system.key), true, '')),
      });
    }
  }
  const bySystem = (section: Section | undefined) =>
    section?.status === 'ok' ? (section.systems as Record<string, Record<string, unknown>>) : undefined;
  const correctnessOf = (entry: Record<string, unknown> | undefined) =>
    (entry?.correctness as Correctness | undefined) ?? {
      effects: 0,
      lost: 0,
      duplicates: 0,
      orderViolations: 0,
    };
  const drain = bySystem(earlier.peers_drain);
  if (drain) {
    comparisons.push({
      figure: 'Drain events/s',
      higherIsBetter: true,
      postbox: Number(drain.postbox?.median ?? 0),
      peers: others.map((system) =>
        judged(system, Number(drain[system.key]?.median ?? 0), correctnessOf(drain[system.key])),
      ),
    });
  }
  const sustained = bySystem(earlier.peers_sustained);
  if (sustained) {
    for (const [figure, field] of [
      ['Sustained delivered/s', 'delivered'],
      ['Sustained committed/s', 'committed'],
    ] as const) {
      const value = (key: string) => Number((sustained[key]?.[field] as Summary | undefined)?.median ?? 0);
      comparisons.push({
        figure,
        higherIsBetter: true,
        postbox: value('postbox'),
        peers: others.map((system) =>
          judged(system, value(system.key), correctnessOf(sustained[system.key])),
        ),
      });
    }
  }
  const latency = bySystem(earlier.peers_latency);
  if (latency) {
    for (const [figure, field] of [
      ['Latency p50 ms', 'p50'],
      ['Latency p99 ms', 'p99'],
    ] as const) {
      const value = (key: string) => Number((latency[key]?.[field] as Summary | undefined)?.median ?? 0);
      comparisons.push({
        figure,
        higherIsBetter: false,
        postbox: value('postbox'),
        peers: others.map((system) => {
          // Latency's own check is "every event handled"; order and loss are judged by the other scenarios,
          // so a peer counts as correct here if it kept per-stream order and lost nothing in sustained.
          const c = sustained ? correctnessOf(sustained[system.key]) : undefined;
          const missing = Number(latency[system.key]?.missing ?? 0);
          const correct = missing === 0 && (c ? isCorrect(c) : true);
          const note = missing > 0 ? `${missing} never handled` : c ? correctnessNote(system, c) : '';
          return peerEntry(system, value(system.key), correct, note);
        }),
      });
    }
  }
  return comparisons;
}

/** The peer comparison's scenarios, in run order; the summary last. */
export const peerScenarios: readonly ScenarioModule[] = [
  peersAppendScenario,
  peersDrainScenario,
  peersSustainedScenario,
  peersLatencyScenario,
  peersSummaryScenario,
];

export { peerSystems };
