import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import type { BenchDatabase } from '../lib/server.ts';
import { makeOrder, type Order } from '../lib/workload.ts';

/**
 * One event of the peer comparison: the same for every system. `streamId` and `version` are the
 * application's view (its own per-stream counter, see {@link StreamCursor}); Postbox and Emmett number
 * stream versions themselves and their consumers report those, which match it because one writer owns a
 * stream at a time.
 */
export interface PeerEvent {
  readonly eventId: string;
  readonly streamId: string;
  readonly version: number;
  readonly order: Order;
}

/** What every consumer reports for one event it handles (read from the system's delivered message). */
export interface DeliveredEvent {
  readonly eventId: string;
  readonly streamId: string;
  readonly version: number;
}

/**
 * The handler work shared by every system: called at the start of each handler call, it stamps the start
 * (in-process clock and a global start sequence) and returns the effect statement to run on the system's
 * own connection — in the delivery transaction where the system has one.
 */
export interface EffectRecorder {
  start(event: DeliveredEvent): { readonly text: string; readonly values: unknown[] };
}

/** A system's append path on the application's own pool: runs inside the app's `BEGIN … COMMIT`. */
export type AppendInTransaction = (client: pg.PoolClient, event: PeerEvent) => Promise<void>;

/** One system of the comparison, set up on its own database (so systems never share tables or queues). */
export interface PeerSystem {
  /** Key in the JSON and the tables, e.g. `pgboss_fifo`. */
  readonly key: string;
  /** Human name, e.g. `pg-boss (key_strict_fifo)`. */
  readonly label: string;
  /** Installed package and version, e.g. `pg-boss 12.38.0`. */
  readonly version: string;
  /** Does the system promise per-stream (per-key) delivery order? Order violations are reported either way. */
  readonly ordered: boolean;
  /** Its database needs Postbox's migrations (only Postbox itself); others get the bench tables alone. */
  readonly needsPostboxSchema?: boolean;
  /** The settings the bench runs it with (documented in bench/README.md, recorded in the JSON). */
  readonly settings: Readonly<Record<string, unknown>>;
  /** Installs the system's schema on `database` and returns a handle. */
  setup(database: BenchDatabase, options: PeerSetupOptions): Promise<PeerInstance>;
}

/** Sizes the bench passes to {@link PeerSystem.setup}. */
export interface PeerSetupOptions {
  /** Handlers (or partitions/workers) running at once. */
  readonly concurrency: number;
}

/** A system installed on one database. */
export interface PeerInstance {
  /** Business row already inserted by the caller on `client`; this adds the one event. */
  readonly appendInTransaction: AppendInTransaction;
  /**
   * Extra append paths of this system worth showing next to the app-pool one (Postbox: its internal
   * prepared pool), each a whole business transaction (business row + event).
   */
  readonly extraAppends?: ReadonlyArray<{
    readonly key: string;
    readonly label: string;
    run(event: PeerEvent): Promise<void>;
  }>;
  /**
   * Pre-appends events for the drain, through the system's own (bulk where it has one) append API; the
   * business rows are not part of it (only delivery is timed).
   */
  fill(events: readonly PeerEvent[]): Promise<void>;
  /** Starts the consumer; every handler call goes through `recorder`. */
  startConsumer(recorder: EffectRecorder): Promise<void>;
  /** Stops the consumer (lets running handlers finish). */
  stopConsumer(): Promise<void>;
  /** Releases everything it opened (the database itself is dropped by the bench). */
  teardown(): Promise<void>;
}

/**
 * The effect table of every system's database: one row per handled event, keyed by the event id. A second
 * delivery of the same event counts up `duplicates` instead of failing the handler (which would turn a
 * duplicate into a retry loop); `start_seq` is the handler's start order across the process.
 */
export const EFFECTS_SCHEMA = `
  create table bench.effects (
    event_id uuid primary key,
    stream_id text not null,
    stream_version integer not null,
    start_seq bigint not null,
    started_at timestamptz not null default clock_timestamp(),
    duplicates integer not null default 0
  )`;

/** The handler's statement ($1 event id, $2 stream, $3 version, $4 start sequence). */
export const EFFECT_SQL = `insert into bench.effects (event_id, stream_id, stream_version, start_seq)
  values ($1, $2, $3, $4)
  on conflict (event_id) do update set duplicates = bench.effects.duplicates + 1`;

/** The business row of every measured transaction (the same statement for every system). */
export const BUSINESS_SQL = 'insert into bench.orders (id, customer_id, total_cents) values ($1, $2, $3)';

/** The payload every system carries (≈ 230 bytes of JSON): the order and the app's stream coordinates. */
export function eventPayload(event: PeerEvent): Record<string, unknown> {
  return {
    eventId: event.eventId,
    streamId: event.streamId,
    version: event.version,
    ...event.order.payload,
  };
}

/**
 * Hands out stream coordinates. A stream belongs to one writer at a time (the bench gives each writer its
 * own cursor), so its versions commit in order and the app-side counter is the stream version.
 */
export class StreamCursor {
  private readonly versions: number[];
  private next = 0;
  private readonly prefix: string;
  private readonly streams: number;

  /** `streams` streams, used round-robin; `streams = 0` gives every event a new stream (version 1). */
  constructor(streams: number) {
    this.streams = streams;
    this.versions = Array.from({ length: streams }, () => 0);
    this.prefix = randomUUID();
  }

  /** The next event: its stream, the stream's next version, a fresh id and order. */
  nextEvent(): PeerEvent {
    const order = makeOrder();
    if (this.streams === 0) {
      return { eventId: randomUUID(), streamId: randomUUID(), version: 1, order };
    }
    const index = this.next;
    this.next = (this.next + 1) % this.streams;
    const version = (this.versions[index] ?? 0) + 1;
    this.versions[index] = version;
    return { eventId: randomUUID(), streamId: `${this.prefix}-${index}`, version, order };
  }
}

/**
 * `BEGIN; INSERT business row; <system's append>; COMMIT` on a client of the application's own pool.
 * Returns once COMMIT resolved.
 */
export async function businessTransaction(
  pool: pg.Pool,
  event: PeerEvent,
  append: AppendInTransaction,
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query(BUSINESS_SQL, [event.order.orderId, event.order.customerId, event.order.totalCents]);
    await append(client, event);
    await client.query('commit');
    client.release();
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    client.release();
    throw error;
  }
}

/** The limit: the same business transaction with one plain row into the bench's bare outbox table. */
export const rawAppend: AppendInTransaction = async (client, event) => {
  await client.query(
    'insert into bench.outbox_raw (event_id, type, stream_id, payload) values ($1, $2, $3, $4)',
    [event.eventId, 'OrderPlaced', event.streamId, JSON.stringify(eventPayload(event))],
  );
};

/** The version of an installed package (`.` = this repository), read from its package.json. */
export function installedVersion(name: string): string {
  const file = new URL(
    name === '.' ? '../../package.json' : `../../node_modules/${name}/package.json`,
    import.meta.url,
  );
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}
