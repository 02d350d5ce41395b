import { type QueryExecutorProvider, sql } from 'kysely';

/** A destination's circuit as stored in `outbox.destination_circuits`. */
export interface CircuitRow {
  state: 'closed' | 'open' | 'half_open';
  since: Date;
  consecutive_failures: number;
  open_until: Date | null;
  probe_until: Date | null;
  last_error: string | null;
  last_failure_at: Date | null;
}

/** Reads the circuit (closed when it has no row yet). */
export async function readCircuit(db: QueryExecutorProvider, destination: string): Promise<CircuitRow> {
  const { rows } = await sql<CircuitRow>`
    select state, since, consecutive_failures, open_until, probe_until, last_error, last_failure_at
    from outbox.destination_circuits where destination = ${destination}`.execute(db);
  return (
    rows[0] ?? {
      state: 'closed',
      since: new Date(0),
      consecutive_failures: 0,
      open_until: null,
      probe_until: null,
      last_error: null,
      last_failure_at: null,
    }
  );
}

/**
 * Counts a failure. Closed: one more consecutive failure, and open when the threshold is reached (for
 * `coolDownMs`). A failed half-open probe (`probe`) reopens it. One atomic statement: concurrent
 * failures from several processes count each.
 */
export async function recordCircuitFailure(
  db: QueryExecutorProvider,
  input: {
    readonly destination: string;
    readonly error: string;
    readonly threshold: number;
    readonly coolDownMs: number;
    readonly probe: boolean;
  },
): Promise<CircuitRow | undefined> {
  const { rows } = await sql<CircuitRow>`
    update outbox.destination_circuits c set
      consecutive_failures = c.consecutive_failures + 1,
      last_error = ${input.error}, last_failure_at = now(),
      state = case when ${input.probe}::boolean and c.state = 'half_open' then 'open'
                   when c.state = 'closed' and c.consecutive_failures + 1 >= ${input.threshold} then 'open'
                   else c.state end,
      since = case when (${input.probe}::boolean and c.state = 'half_open')
                     or (c.state = 'closed' and c.consecutive_failures + 1 >= ${input.threshold}) then now()
                   else c.since end,
      open_until = case when (${input.probe}::boolean and c.state = 'half_open')
                          or (c.state = 'closed' and c.consecutive_failures + 1 >= ${input.threshold})
                        then now() + make_interval(secs => ${input.coolDownMs / 1000})
                        else c.open_until end,
      probe_until = case when ${input.probe}::boolean then null else c.probe_until end
    where c.destination = ${input.destination}
    returning state, since, consecutive_failures, open_until, probe_until, last_error, last_failure_at`.execute(
    db,
  );
  return rows[0];
}

/** A success: closes a half-open circuit (the probe passed) and resets the consecutive failures. */
export async function recordCircuitSuccess(
  db: QueryExecutorProvider,
  destination: string,
): Promise<CircuitRow | undefined> {
  const { rows } = await sql<CircuitRow>`
    update outbox.destination_circuits c set
      consecutive_failures = 0,
      state = 'closed',
      since = case when c.state = 'closed' then c.since else now() end,
      open_until = null, probe_until = null
    where c.destination = ${destination} and (c.state <> 'closed' or c.consecutive_failures > 0)
    returning state, since, consecutive_failures, open_until, probe_until, last_error, last_failure_at`.execute(
    db,
  );
  return rows[0];
}

/**
 * Claims the half-open probe: succeeds for exactly one caller across all processes once the circuit's
 * cool-down has passed (or the previous probe's lease ran out: its prober died).
 */
export async function claimCircuitProbe(
  db: QueryExecutorProvider,
  destination: string,
  leaseMs: number,
): Promise<boolean> {
  const { rows } = await sql<{ claimed: number }>`
    update outbox.destination_circuits c set
      state = 'half_open', since = now(),
      probe_until = now() + make_interval(secs => ${leaseMs / 1000})
    where c.destination = ${destination}
      and ((c.state = 'open' and c.open_until <= now()) or (c.state = 'half_open' and c.probe_until <= now()))
    returning 1 as claimed`.execute(db);
  return rows.length > 0;
}
