import { sql } from 'kysely';
import { DeliveryDeferred } from '../consumers/failures.ts';
import type { EngineDb } from '../db/database.ts';
import { WAKE_CHANNEL } from '../outbox/wake-channel.ts';
import {
  type CircuitRow,
  claimCircuitProbe,
  readCircuit,
  recordCircuitFailure,
  recordCircuitSuccess,
} from '../sql/destination-circuit.ts';
import type { BreakerPolicy } from './destination.ts';

/** How long this process trusts the circuit it last read, ms (transitions always go to the database). */
const CACHE_MS = 200;

/** What {@link Circuit.admit} allows. */
export type Admission = 'closed' | 'probe';

/**
 * A destination's circuit breaker, shared by every process through `outbox.destination_circuits`.
 *
 * Closed: requests flow; consecutive failures are counted in the row, and the one reaching
 * `failureThreshold` opens it. Open: no request until `open_until` — deliveries are deferred (they wait,
 * use no attempt, and are not dead-lettered). Then exactly one process claims the half-open probe (an
 * atomic UPDATE): its request succeeding closes the circuit (and wakes the relay, so waiting partitions
 * resume at once); failing reopens it for another cool-down. So the probe rate over all processes is one
 * per cool-down.
 *
 * Why not cockatiel or opossum: both keep the breaker's state in one process's memory, and the issue asks
 * that several processes do not each hammer a dead endpoint; sharing it needs the atomic claim of the
 * probe across processes, which is the three UPDATEs of `sql/destination-circuit.ts`.
 */
export class Circuit {
  readonly #db: EngineDb;
  readonly #destination: string;
  readonly #policy: BreakerPolicy;
  readonly #probeLeaseMs: number;
  #cached: { row: CircuitRow; at: number } | undefined;

  constructor(db: EngineDb, destination: string, policy: BreakerPolicy, probeLeaseMs: number) {
    this.#db = db;
    this.#destination = destination;
    this.#policy = policy;
    this.#probeLeaseMs = probeLeaseMs;
  }

  /**
   * Before a request: `closed` (send), `probe` (send: this is the half-open probe), or throws
   * {@link DeliveryDeferred} until the circuit may let a request through.
   */
  async admit(): Promise<Admission> {
    const row = await this.#read();
    if (row.state === 'closed') return 'closed';
    const now = Date.now();
    const waitUntil = row.state === 'open' ? row.open_until : row.probe_until;
    if (waitUntil && waitUntil.getTime() > now) {
      throw new DeliveryDeferred(
        waitUntil,
        `circuit ${row.state.replace('_', '-')} for ${this.#destination}`,
      );
    }
    if (await claimCircuitProbe(this.#db, this.#destination, this.#probeLeaseMs)) {
      this.#cached = undefined;
      return 'probe';
    }
    this.#cached = undefined;
    throw new DeliveryDeferred(
      new Date(now + Math.min(this.#policy.coolDownMs, 1000)),
      `circuit half-open for ${this.#destination}: another process probes`,
    );
  }

  /** The receiver answered (not with an outage status): closes a half-open circuit, resets the count. */
  async succeeded(admission: Admission): Promise<void> {
    const cached = this.#cached?.row;
    if (admission === 'closed' && cached && cached.state === 'closed' && cached.consecutive_failures === 0)
      return;
    const row = await recordCircuitSuccess(this.#db, this.#destination);
    if (row) this.#cached = { row, at: Date.now() };
    if (admission === 'probe') {
      // Waiting partitions were deferred to the next probe time: a poll resumes them now.
      await sql`select pg_notify(${WAKE_CHANNEL}, 'poll')`.execute(this.#db);
    }
  }

  /**
   * An outage-like failure (5xx, 408, 429, timeout, connection error).
   *
   * @returns the circuit after it; `open` means this failure opened it or was the failed probe.
   */
  async failed(admission: Admission, error: string): Promise<CircuitRow | undefined> {
    const row = await recordCircuitFailure(this.#db, {
      destination: this.#destination,
      error: error.slice(0, 1000),
      threshold: this.#policy.failureThreshold,
      coolDownMs: this.#policy.coolDownMs,
      probe: admission === 'probe',
    });
    if (row) this.#cached = { row, at: Date.now() };
    return row;
  }

  async #read(): Promise<CircuitRow> {
    const now = Date.now();
    if (this.#cached && now - this.#cached.at < CACHE_MS) return this.#cached.row;
    const row = await readCircuit(this.#db, this.#destination);
    this.#cached = { row, at: now };
    return row;
  }
}
