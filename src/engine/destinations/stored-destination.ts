import { type QueryExecutorProvider, sql } from 'kysely';
import type { RetryPolicy } from '../consumers/consumer.ts';
import type { BreakerPolicy, DestinationKind, DestinationSettings } from './destination.ts';

/** A destination as delivery needs it, secrets included (never leaves the engine). */
export interface StoredDestination {
  readonly name: string;
  readonly kind: DestinationKind;
  readonly settings: DestinationSettings;
  readonly retry: RetryPolicy;
  readonly breaker: BreakerPolicy;
  readonly state: 'active' | 'paused' | 'disabled';
  readonly eventTypes: string[];
  readonly streamTypes: string[] | null;
  readonly partitions: number;
  readonly onExhausted: 'dead_letter' | 'block';
  readonly signingSecret: string;
  readonly previousSecret: string | null;
  readonly previousExpiresAt: Date | null;
  readonly headers: Record<string, string>;
  /** Brokers: the URL with its credentials. */
  readonly connectionUrl: string | null;
  /** Changes whenever anything above changes (the sync rebuilds the destination's consumer then). */
  readonly version: string;
}

/** Every destination, with its secrets, for the delivering processes. */
export async function readStoredDestinations(db: QueryExecutorProvider): Promise<StoredDestination[]> {
  const { rows } = await sql<{
    name: string;
    kind: DestinationKind;
    settings: StoredDestination['settings'];
    retry: RetryPolicy;
    breaker: BreakerPolicy;
    state: StoredDestination['state'];
    event_types: string[];
    stream_types: string[] | null;
    partitions: number;
    on_exhausted: 'dead_letter' | 'block';
    signing_secret: string;
    previous_secret: string | null;
    previous_expires_at: Date | null;
    headers: Record<string, string>;
    connection_url: string | null;
    version: string;
  }>`
    select d.name, d.kind, d.settings, d.retry, d.breaker, d.state, c.event_types, c.stream_types, c.partitions,
           c.on_exhausted, s.signing_secret, s.previous_secret, s.previous_expires_at, s.headers,
           s.connection_url,
           concat_ws('/', d.updated_at, c.updated_at, s.updated_at) as version
    from outbox.destinations d
    join outbox.consumers c on c.name = d.name
    join outbox.destination_secrets s on s.destination = d.name
    order by d.name`.execute(db);
  return rows.map((row) => ({
    name: row.name,
    kind: row.kind,
    settings: row.settings,
    retry: row.retry,
    breaker: row.breaker,
    state: row.state,
    eventTypes: row.event_types,
    streamTypes: row.stream_types,
    partitions: row.partitions,
    onExhausted: row.on_exhausted,
    signingSecret: row.signing_secret,
    previousSecret: row.previous_secret,
    previousExpiresAt: row.previous_expires_at,
    headers: row.headers,
    connectionUrl: row.connection_url,
    version: row.version,
  }));
}
