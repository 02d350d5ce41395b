import { sql } from 'kysely';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from '../db/database.ts';
import type { DeliveryOutcome, DestinationAttempt } from '../engine/index.ts';
import { readHorizonHolders, readLogHead } from '../engine/index.ts';

/** How long one scrape's answer is reused by default, ms (Prometheus scrapes every 15 s or more). */
export const DEFAULT_METRICS_CACHE_MS = 1000;

/**
 * `statement_timeout` of a refresh's queries by default, ms; a scrape waits for a refresh about this long
 * before it answers with the previous values. Well under Prometheus's default scrape timeout (10 s).
 */
export const DEFAULT_METRICS_STATEMENT_TIMEOUT_MS = 2000;

/** Postbox's Prometheus metrics and the hooks that feed them. */
export interface Metrics {
  readonly registry: Registry;
  /** Pass as `startPostbox({ onDelivery })`. */
  onDelivery(outcome: DeliveryOutcome): void;
  /** Subscribe to the engine's `destinationAttempt` events. */
  onDestinationAttempt(attempt: DestinationAttempt): void;
  /** Pass as `startPostbox({ onRelayActivity })`. */
  onRelayActivity(kind: 'wakeup' | 'poll' | 'scan', scheduled: number): void;
  /** One GraphQL operation executed (`type`: query | mutation | subscription). */
  onGraphqlOperation(type: string, errors: number): void;
  /** Live subscriptions (incremented on start, decremented on end). */
  readonly subscriptionsOpen: Gauge;
  /**
   * Prometheus text exposition of every metric (refreshes the database-backed gauges first). Concurrent
   * calls share one refresh; an answer is reused for `cacheMs`. A refresh that fails or outlasts
   * `statementTimeoutMs` does not fail or hang the scrape: it answers with the previous values, counted in
   * `postbox_metrics_refresh_failures_total` (their age: `postbox_metrics_last_refresh_timestamp_seconds`).
   */
  render(): Promise<string>;
}

/**
 * Builds the metrics on a registry of their own (so tests and several instances do not collide).
 *
 * Database-backed figures (consumer lag, oldest undelivered event, retrying/blocked streams, dead letters,
 * events appended per type) are read when Prometheus scrapes: they are facts of the shared database, the
 * same whichever process is asked. `postbox_events_appended_total` counts committed events as the log
 * shows them (gap-safe, so a late-committing transaction is counted once it commits), since this process
 * started.
 */
export function createMetrics(
  db: Db,
  options: {
    defaultMetrics?: boolean;
    /** How long one rendering answers every scrape, ms. Default {@link DEFAULT_METRICS_CACHE_MS}. */
    cacheMs?: number;
    /**
     * `statement_timeout` of the refresh's queries, ms, and about how long a scrape waits for the refresh.
     * Default {@link DEFAULT_METRICS_STATEMENT_TIMEOUT_MS}.
     */
    statementTimeoutMs?: number;
  } = {},
): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true)
    collectDefaultMetrics({ register: registry, prefix: 'postbox_process_' });

  const deliveries = new Counter({
    name: 'postbox_deliveries_total',
    help: 'Handler calls that committed (success) or failed (failure, dead_letter), per consumer and event type.',
    labelNames: ['consumer', 'event_type', 'outcome'] as const,
    registers: [registry],
  });
  const handlerDuration = new Histogram({
    name: 'postbox_handler_duration_seconds',
    help: 'Time a handler took for one event (committed deliveries).',
    labelNames: ['consumer'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  const relay = new Counter({
    name: 'postbox_relay_activity_total',
    help: 'Relay iterations by cause: wakeup (NOTIFY received), scan (new events seen), poll (periodic guarantee).',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const relayScheduled = new Counter({
    name: 'postbox_relay_drains_scheduled_total',
    help: 'Partition drain jobs enqueued by the relay.',
    registers: [registry],
  });
  const operations = new Counter({
    name: 'postbox_graphql_operations_total',
    help: 'GraphQL operations executed, by operation type.',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const operationErrors = new Counter({
    name: 'postbox_graphql_errors_total',
    help: 'GraphQL errors returned, by operation type.',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const subscriptionsOpen = new Gauge({
    name: 'postbox_subscriptions_open',
    help: 'GraphQL subscriptions currently open in this process.',
    registers: [registry],
  });

  const lag = new Gauge({
    name: 'postbox_consumer_lag_events',
    help: 'Events committed but not yet delivered, per consumer.',
    labelNames: ['consumer'] as const,
    registers: [registry],
  });
  const oldest = new Gauge({
    name: 'postbox_consumer_oldest_pending_seconds',
    help: 'Age of the oldest undelivered event, per consumer (0 when caught up).',
    labelNames: ['consumer'] as const,
    registers: [registry],
  });
  const retrying = new Gauge({
    name: 'postbox_consumer_retrying_streams',
    help: 'Streams waiting on a scheduled retry, per consumer.',
    labelNames: ['consumer'] as const,
    registers: [registry],
  });
  const blocked = new Gauge({
    name: 'postbox_consumer_blocked_streams',
    help: 'Streams parked until an operator redrives them, per consumer.',
    labelNames: ['consumer'] as const,
    registers: [registry],
  });
  const deadLetters = new Gauge({
    name: 'postbox_dead_letters',
    help: 'Open dead letters, per consumer.',
    labelNames: ['consumer'] as const,
    registers: [registry],
  });
  const destinationRequests = new Counter({
    name: 'postbox_destination_requests_total',
    help:
      'Requests to destinations, per destination and result: 2xx, 4xx, 410, 5xx (408 and 429 included) or ' +
      'no_response (timeout, connection error).',
    labelNames: ['destination', 'result'] as const,
    registers: [registry],
  });
  const destinationDuration = new Histogram({
    name: 'postbox_destination_request_duration_seconds',
    help: 'Time from sending a request to a destination to its response (or the failure), per destination.',
    labelNames: ['destination'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const circuitState = new Gauge({
    name: 'postbox_destination_circuit_state',
    help: 'Circuit of each destination: 0 closed, 1 half-open, 2 open (shared by every process).',
    labelNames: ['destination'] as const,
    registers: [registry],
  });
  const circuitFailures = new Gauge({
    name: 'postbox_destination_consecutive_failures',
    help: 'Consecutive failed requests counted by the circuit of each destination.',
    labelNames: ['destination'] as const,
    registers: [registry],
  });
  const circuitSince = new Gauge({
    name: 'postbox_destination_circuit_state_since_seconds',
    help: "How long each destination's circuit has been in its current state.",
    labelNames: ['destination'] as const,
    registers: [registry],
  });
  // What every reader of the log waits for. Its query text stays out of /metrics (unauthenticated): the
  // CLI and the admin GraphQL field show it.
  const horizonAge = new Gauge({
    name: 'postbox_horizon_holder_age_seconds',
    help: 'Age of the oldest open write transaction of the cluster, which holds back every reader of the log (0: none).',
    registers: [registry],
  });
  const horizonPid = new Gauge({
    name: 'postbox_horizon_holder_pid',
    help: 'Backend pid of that transaction (0: none, or a prepared transaction); see `postbox consumers horizon`.',
    registers: [registry],
  });
  const appended = new Counter({
    name: 'postbox_events_appended_total',
    help: 'Events committed to the log since this process started, per event type.',
    labelNames: ['type'] as const,
    registers: [registry],
  });

  const refreshFailures = new Counter({
    name: 'postbox_metrics_refresh_failures_total',
    help:
      'Scrapes answered with the previous database-backed values because reading them failed or took longer ' +
      'than the metrics statement timeout.',
    registers: [registry],
  });
  const lastRefresh = new Gauge({
    name: 'postbox_metrics_last_refresh_timestamp_seconds',
    help: 'When the database-backed metrics were last read successfully (Unix time).',
    registers: [registry],
  });

  let logCursor: { logXid: string; position: string } | undefined;
  const cacheMs = options.cacheMs ?? DEFAULT_METRICS_CACHE_MS;
  const statementTimeoutMs = options.statementTimeoutMs ?? DEFAULT_METRICS_STATEMENT_TIMEOUT_MS;
  let rendering: Promise<string> | undefined;
  let refreshing: Promise<void> | undefined;
  let cached: { at: number; text: string } | undefined;
  // One transaction, JIT off: these are small aggregates, where compiling (~450 ms on PostgreSQL 15) costs
  // far more than it saves. Its own statement timeout: /metrics is unauthenticated and scraped forever, so a
  // slow read must end rather than pile up.
  const refresh = () =>
    db.transaction().execute(async (trx) => {
      await sql`select set_config('jit', 'off', true), set_config('statement_timeout', ${String(Math.trunc(statementTimeoutMs))}, true)`.execute(
        trx,
      );
      await refreshIn(trx);
    });
  /**
   * Runs one refresh at a time. A scrape waits for it up to the statement timeout (plus the time to get a
   * connection, bounded the same way); a refresh still running then goes on in the background, and the
   * next scrapes wait for that one instead of starting another.
   */
  const refreshOrTimeOut = async (): Promise<void> => {
    // Never rejects: its outcome is counted, and it may outlive the scrape that started it.
    refreshing ??= refresh()
      .then(
        () => 'ok' as const,
        () => 'failed' as const,
      )
      .then((outcome) => {
        refreshing = undefined;
        if (outcome === 'ok') lastRefresh.set(Date.now() / 1000);
        else refreshFailures.inc();
      });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), statementTimeoutMs + 500);
    });
    try {
      // A refresh that fails counts itself; one that is too slow is counted here (once per scrape answered
      // without it).
      if ((await Promise.race([refreshing, timedOut])) === 'timeout') refreshFailures.inc();
    } finally {
      clearTimeout(timer);
    }
  };
  const refreshIn = async (db: Db) => {
    const { rows } = await sql<{
      consumer: string;
      lag: string;
      oldest_seconds: number | null;
      retrying: string;
      blocked: string;
      dead_letters: string;
    }>`select consumer, sum(lag)::text as lag,
              extract(epoch from now() - min(oldest_pending_at))::float8 as oldest_seconds,
              sum(retrying)::text as retrying, sum(blocked)::text as blocked, sum(dead_letters)::text as dead_letters
       from outbox.consumer_lag group by consumer`.execute(db);
    for (const row of rows) {
      lag.set({ consumer: row.consumer }, Number(row.lag));
      oldest.set({ consumer: row.consumer }, row.oldest_seconds ?? 0);
      retrying.set({ consumer: row.consumer }, Number(row.retrying));
      blocked.set({ consumer: row.consumer }, Number(row.blocked));
      deadLetters.set({ consumer: row.consumer }, Number(row.dead_letters));
    }
    const { rows: circuits } = await sql<{
      destination: string;
      state: 'closed' | 'open' | 'half_open';
      consecutive_failures: number;
      since_seconds: number;
    }>`select destination, state, consecutive_failures, extract(epoch from now() - since)::float8 as since_seconds
       from outbox.destination_circuits`.execute(db);
    circuitState.reset();
    circuitFailures.reset();
    circuitSince.reset();
    for (const row of circuits) {
      const labels = { destination: row.destination };
      circuitState.set(labels, row.state === 'closed' ? 0 : row.state === 'half_open' ? 1 : 2);
      circuitFailures.set(labels, row.consecutive_failures);
      circuitSince.set(labels, row.since_seconds);
    }
    const [holder] = await readHorizonHolders(db, { limit: 1 });
    horizonAge.set(holder ? holder.ageMs / 1000 : 0);
    horizonPid.set(holder?.pid ?? 0);
    if (!logCursor) {
      // Start counting at the current end of the readable log.
      logCursor = await readLogHead(db);
      return;
    }
    const { rows: counts } = await sql<{ type: string; n: string; last_xid: string; last_position: string }>`
      with fresh as (
        select type, log_xid, position from outbox.events
        where (log_xid, position) > (${logCursor.logXid}::xid8, ${logCursor.position}::bigint)
          and log_xid < pg_snapshot_xmin(pg_current_snapshot()))
      select type, count(*)::text as n,
             (select f.log_xid::text as x from fresh f order by f.log_xid desc, f.position desc limit 1) as last_xid,
             (select f.position::text as p from fresh f order by f.log_xid desc, f.position desc limit 1) as last_position
      from fresh group by type`.execute(db);
    for (const row of counts) appended.inc({ type: row.type }, Number(row.n));
    const last = counts[0];
    if (last) logCursor = { logXid: last.last_xid, position: last.last_position };
  };

  return {
    registry,
    subscriptionsOpen,
    onDelivery(outcome) {
      const result = outcome.ok ? 'success' : outcome.deadLettered ? 'dead_letter' : 'failure';
      deliveries.inc({ consumer: outcome.consumer, event_type: outcome.eventType, outcome: result });
      if (outcome.ok) handlerDuration.observe({ consumer: outcome.consumer }, outcome.durationMs / 1000);
    },
    onDestinationAttempt(attempt) {
      const status = attempt.status;
      const result =
        status === undefined
          ? 'no_response'
          : status === 410
            ? '410'
            : status >= 500 || status === 408 || status === 429
              ? '5xx'
              : status >= 200 && status < 300
                ? '2xx'
                : '4xx';
      destinationRequests.inc({ destination: attempt.destination, result });
      destinationDuration.observe({ destination: attempt.destination }, attempt.durationMs / 1000);
    },
    onRelayActivity(kind, scheduled) {
      relay.inc({ kind });
      if (scheduled > 0) relayScheduled.inc(scheduled);
    },
    onGraphqlOperation(type, errors) {
      operations.inc({ type });
      if (errors > 0) operationErrors.inc({ type }, errors);
    },
    render() {
      // Concurrent scrapes share one refresh (two refreshes reading from the same log cursor counted the
      // same events twice), and its answer serves the scrapes of the next `cacheMs`.
      if (cached && performance.now() - cached.at < cacheMs) return Promise.resolve(cached.text);
      rendering ??= (async () => {
        try {
          await refreshOrTimeOut();
          const text = await registry.metrics();
          cached = { at: performance.now(), text };
          return text;
        } finally {
          rendering = undefined;
        }
      })();
      return rendering;
    },
  };
}
