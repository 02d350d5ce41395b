import { randomUUID } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { z } from 'zod';
import { listConsumers, replayConsumer } from '../consumers/admin.ts';
import type { RetryPolicy } from '../consumers/consumer.ts';
import { engineView } from '../db/database.ts';
import { partitionLockArgs } from '../db/lock-keys.ts';
import { DEFAULTS } from '../defaults.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import { READABLE_HORIZON } from '../outbox/horizon.ts';
import { WAKE_CHANNEL } from '../outbox/wake-channel.ts';
import { type AddressPolicy, checkDestinationUrl } from './address-guard.ts';
import { checkBroker, requireBroker } from './broker-check.ts';
import { CLOUD_EVENT_SOURCE } from './cloud-event.ts';
import { describeResponse, signingSecrets } from './deliver.ts';
import {
  type BreakerPolicy,
  type DestinationDefinition,
  type DestinationInput,
  type DestinationKind,
  type DestinationSettings,
  type DestinationSpec,
  destinationInputSchema,
  generateSigningSecret,
  parseDestinationInput,
  toValidationError,
} from './destination.ts';
import { DESTINATIONS_CHANGED } from './destination-sync.ts';
import { kafkaBrokerUrls, parseKafkaUrl } from './kafka-brokers.ts';
import { readStoredDestinations } from './stored-destination.ts';
import { classifyResponse, WebhookSender } from './webhook.ts';

type Executor = Parameters<ReturnType<typeof sql>['execute']>[0];

/** Options of the functions that reach or store a destination's address. */
export interface DestinationAdminOptions {
  /** Which addresses destinations may target (the SSRF guard). Default: public addresses only. */
  readonly addressPolicy?: AddressPolicy;
}

/** A destination as queries return it: everything but its secrets. */
export interface DestinationView {
  readonly name: string;
  readonly kind: DestinationKind;
  /** The URL; a broker URL without its user and password. */
  readonly url: string;
  readonly timeoutMs: number;
  /** `nats`: the subject template; null for other kinds. */
  readonly subject: string | null;
  /** `nats`: whether a missing stream is created. */
  readonly createStream: boolean | null;
  /** `rabbitmq`: the topic exchange. */
  readonly exchange: string | null;
  /** `rabbitmq`: the routing key template. */
  readonly routingKey: string | null;
  /** `kafka`: the topic template. */
  readonly topic: string | null;
  readonly filter: { readonly types: readonly string[]; readonly streamTypes: readonly string[] | null };
  readonly state: 'active' | 'paused' | 'disabled';
  /** Why it is paused or disabled (e.g. `HTTP 410 Gone`). */
  readonly stateReason: string | null;
  readonly retry: RetryPolicy;
  readonly onExhausted: 'dead_letter' | 'block';
  readonly maxInFlight: number;
  readonly breaker: BreakerPolicy;
  /** Names of its custom headers (their values are secret). */
  readonly headerNames: readonly string[];
  /** A rotation's previous secret still signs until then. */
  readonly previousSecretExpiresAt: Date | null;
  readonly circuit: {
    readonly state: 'closed' | 'open' | 'half_open';
    readonly since: Date;
    readonly consecutiveFailures: number;
    readonly openUntil: Date | null;
    readonly lastError: string | null;
    readonly lastFailureAt: Date | null;
  };
  /** Events not yet delivered. */
  readonly lag: number;
  readonly retrying: number;
  readonly blocked: number;
  readonly deadLetters: number;
  readonly delivered: number;
  /** The last failed attempt's error (or the circuit's), if any. */
  readonly lastError: string | null;
  readonly declaredIn: 'code' | 'runtime';
  readonly createdAt: Date;
}

/** What {@link createDestination} returns: the destination and — this once — its signing secret. */
export interface CreatedDestination {
  readonly destination: DestinationView;
  readonly secret: string;
}

/** A failed uniqueness constraint: the name is taken. */
function nameTaken(name: string): ConflictError {
  return new ConflictError(`A destination or consumer named ${name} already exists`, 'name');
}

/**
 * Creates a destination at runtime: validated (zod), its URL checked against the address policy (a
 * broker kind: and connected to — address, credentials, stream or exchange — see `checkBroker`), then
 * written in one transaction — its consumer row and partitions (starting now or at the beginning of the
 * log), settings, a generated `whsec_` secret (unless given) and a closed circuit. Running processes pick
 * it up on commit (a NOTIFY) or within their poll interval.
 *
 * @throws ValidationError (bad input, private address), ConflictError (name taken); nothing is written.
 */
export async function createDestination<DB>(
  db: Kysely<DB>,
  input: DestinationInput,
  options: DestinationAdminOptions = {},
): Promise<CreatedDestination> {
  const spec = parseDestinationInput(input);
  await checkAddresses(spec, options.addressPolicy ?? {});
  if (spec.kind !== 'webhook')
    await requireBroker(spec.kind, spec.name, spec.settings, spec.connectionUrl ?? spec.settings.url);
  const secret = spec.secret ?? generateSigningSecret();
  await engineView(db)
    .transaction()
    .execute(async (trx) => {
      await insertDestination(trx, spec, secret, 'runtime');
      await notifyChanged(trx);
    });
  return { destination: await getDestination(db, spec.name), secret };
}

async function insertDestination(
  trx: Executor,
  spec: DestinationSpec,
  secret: string,
  declaredIn: 'code' | 'runtime',
): Promise<void> {
  const inserted = await sql`
    insert into outbox.consumers (name, event_types, stream_types, partitions, on_exhausted, kind)
    values (${spec.name}, ${[...spec.filter.types]}::text[], ${spec.filter.streamTypes ? [...spec.filter.streamTypes] : null}::text[],
            ${spec.maxInFlight}, ${spec.onExhausted}, 'destination')
    on conflict (name) do nothing`.execute(trx);
  if (inserted.numAffectedRows === 0n) throw nameTaken(spec.name);
  const start = spec.startFrom === 'now' ? sql.raw(READABLE_HORIZON) : sql`${'0'}::xid8`;
  await sql`
    insert into outbox.consumer_partitions (consumer, partition, checkpoint_xid, checkpoint_position)
    select ${spec.name}, p, ${start}, 0 from generate_series(0, ${spec.maxInFlight - 1}) p`.execute(trx);
  await sql`
    insert into outbox.destinations (name, kind, settings, retry, breaker, declared_in)
    values (${spec.name}, ${spec.kind}, ${JSON.stringify(spec.settings)}::jsonb, ${JSON.stringify(spec.retry)}::jsonb,
            ${JSON.stringify(spec.breaker)}::jsonb, ${declaredIn})`.execute(trx);
  await sql`
    insert into outbox.destination_secrets (destination, signing_secret, headers, connection_url)
    values (${spec.name}, ${secret}, ${JSON.stringify(spec.headers ?? {})}::jsonb, ${spec.connectionUrl ?? null})`.execute(
    trx,
  );
  await sql`insert into outbox.destination_circuits (destination) values (${spec.name})`.execute(trx);
}

/** The address policy over a destination's URL: each bootstrap broker of a `kafka` one. */
async function checkAddresses(spec: DestinationSpec, policy: AddressPolicy): Promise<void> {
  const urls =
    spec.kind === 'kafka' ? kafkaBrokerUrls(parseKafkaUrl(spec.settings.url)) : [spec.settings.url];
  for (const url of urls) await checkDestinationUrl(url, policy);
}

/** Fields {@link updateDestination} can change (kind and maxInFlight are fixed at creation). */
export type DestinationPatch = Partial<
  Pick<
    DestinationInput,
    | 'url'
    | 'filter'
    | 'retry'
    | 'onExhausted'
    | 'timeoutMs'
    | 'headers'
    | 'breaker'
    | 'subject'
    | 'createStream'
    | 'exchange'
    | 'routingKey'
    | 'topic'
  >
>;

/**
 * Changes a destination's settings; running processes pick the change up on commit. `headers` replaces the
 * whole set when given.
 *
 * @throws ValidationError, NotFoundError; nothing is written.
 */
export async function updateDestination<DB>(
  db: Kysely<DB>,
  name: string,
  patch: DestinationPatch,
  options: DestinationAdminOptions = {},
): Promise<DestinationView> {
  const current = await getDestination(db, name);
  const merged = {
    name,
    kind: current.kind,
    url: patch.url ?? current.url,
    filter: patch.filter ?? {
      types: current.filter.types,
      ...(current.filter.streamTypes ? { streamTypes: current.filter.streamTypes } : {}),
    },
    retry: { ...current.retry, ...(patch.retry ?? {}) },
    onExhausted: patch.onExhausted ?? current.onExhausted,
    timeoutMs: patch.timeoutMs ?? current.timeoutMs,
    breaker: { ...current.breaker, ...(patch.breaker ?? {}) },
    maxInFlight: current.maxInFlight,
    ...(patch.headers ? { headers: patch.headers } : {}),
    ...brokerFields(current, patch),
  };
  const spec = parseDestinationInput(merged);
  if (patch.url !== undefined) await checkAddresses(spec, options.addressPolicy ?? {});
  // A broker URL given without credentials keeps the stored ones only when it is the same URL.
  let connectionUrl: string | undefined;
  if (spec.kind !== 'webhook') {
    const stored = (await readStoredDestinations(engineView(db))).find((row) => row.name === name);
    connectionUrl = patch.url ?? stored?.connectionUrl ?? spec.settings.url;
    const changed =
      patch.url !== undefined ||
      patch.subject !== undefined ||
      patch.createStream !== undefined ||
      patch.exchange !== undefined ||
      patch.topic !== undefined;
    if (changed) await requireBroker(spec.kind, name, spec.settings, connectionUrl);
  }
  await engineView(db)
    .transaction()
    .execute(async (trx) => {
      await sql`update outbox.consumers set event_types = ${[...spec.filter.types]}::text[],
                  stream_types = ${spec.filter.streamTypes ? [...spec.filter.streamTypes] : null}::text[],
                  on_exhausted = ${spec.onExhausted}, updated_at = now()
                where name = ${name}`.execute(trx);
      await sql`update outbox.destinations set settings = ${JSON.stringify(spec.settings)}::jsonb,
                  retry = ${JSON.stringify(spec.retry)}::jsonb, breaker = ${JSON.stringify(spec.breaker)}::jsonb,
                  updated_at = now()
                where name = ${name}`.execute(trx);
      if (patch.headers) {
        await sql`update outbox.destination_secrets set headers = ${JSON.stringify(spec.headers ?? {})}::jsonb,
                    updated_at = now() where destination = ${name}`.execute(trx);
      }
      if (patch.url !== undefined && connectionUrl !== undefined) {
        await sql`update outbox.destination_secrets set connection_url = ${connectionUrl}, updated_at = now()
                  where destination = ${name}`.execute(trx);
      }
      await notifyChanged(trx);
    });
  return getDestination(db, name);
}

/** The kind-specific fields of an update: the patch's, else the current ones (only the kind's own). */
function brokerFields(current: DestinationView, patch: DestinationPatch) {
  if (current.kind === 'nats')
    return {
      subject: patch.subject ?? current.subject ?? undefined,
      createStream: patch.createStream ?? current.createStream ?? undefined,
    };
  if (current.kind === 'rabbitmq')
    return {
      exchange: patch.exchange ?? current.exchange ?? undefined,
      routingKey: patch.routingKey ?? current.routingKey ?? undefined,
    };
  if (current.kind === 'kafka') return { topic: patch.topic ?? current.topic ?? undefined };
  return {
    ...(patch.subject !== undefined ? { subject: patch.subject } : {}),
    ...(patch.topic !== undefined ? { topic: patch.topic } : {}),
    ...(patch.createStream !== undefined ? { createStream: patch.createStream } : {}),
    ...(patch.exchange !== undefined ? { exchange: patch.exchange } : {}),
    ...(patch.routingKey !== undefined ? { routingKey: patch.routingKey } : {}),
  };
}

/** Stops delivery to a destination (in-flight batches finish); events wait for it. */
export async function pauseDestination<DB>(db: Kysely<DB>, name: string): Promise<DestinationView> {
  await setState(db, name, 'paused', 'paused by an operator');
  return getDestination(db, name);
}

/**
 * Resumes a paused or disabled destination from where it stopped; its circuit starts closed again (an
 * operator resuming after a 410 or an outage vouches for the receiver).
 */
export async function resumeDestination<DB>(db: Kysely<DB>, name: string): Promise<DestinationView> {
  await setState(db, name, 'active', null);
  return getDestination(db, name);
}

async function setState<DB>(
  db: Kysely<DB>,
  name: string,
  state: 'active' | 'paused',
  reason: string | null,
): Promise<void> {
  await engineView(db)
    .transaction()
    .execute(async (trx) => {
      const result = await sql`update outbox.destinations set state = ${state}, state_reason = ${reason},
                                 updated_at = now() where name = ${name}`.execute(trx);
      if (result.numAffectedRows === 0n) throw new NotFoundError(`No destination named ${name}`);
      await sql`update outbox.consumers set status = ${state === 'active' ? 'active' : 'paused'}, updated_at = now()
                where name = ${name}`.execute(trx);
      if (state === 'active') {
        await sql`update outbox.destination_circuits set state = 'closed', since = now(), consecutive_failures = 0,
                    open_until = null, probe_until = null
                  where destination = ${name} and state <> 'closed'`.execute(trx);
      }
      await notifyChanged(trx);
      await sql`select pg_notify(${WAKE_CHANNEL}, 'poll')`.execute(trx);
    });
}

/**
 * Deletes a destination and everything it had: checkpoints, retries, dead letters, circuit, secrets,
 * attempt log. Waits for in-flight batches (each partition's drain lock) so none commits after it.
 */
export async function deleteDestination<DB>(db: Kysely<DB>, name: string): Promise<void> {
  await engineView(db)
    .transaction()
    .execute(async (trx) => {
      const { rows } = await sql<{ partitions: number }>`
        select c.partitions from outbox.consumers c join outbox.destinations d on d.name = c.name
        where c.name = ${name} for update of c`.execute(trx);
      const row = rows[0];
      if (!row) throw new NotFoundError(`No destination named ${name}`);
      for (let partition = 0; partition < row.partitions; partition++) {
        await sql`select pg_advisory_xact_lock(${sql.raw(partitionLockArgs(name, partition))})`.execute(trx);
      }
      await sql`delete from outbox.consumers where name = ${name}`.execute(trx);
      await notifyChanged(trx);
    });
}

/** Options of {@link replayDestination}. */
export interface ReplayDestinationOptions {
  /** Re-send the events after this log position; omitted: from the beginning of the log. */
  readonly afterPosition?: string;
}

/**
 * Sends the events after a position (or all) again, in stream order, with their original `webhook-id`s
 * (receivers that deduplicate will ignore what they already have).
 */
export async function replayDestination<DB>(
  db: Kysely<DB>,
  name: string,
  options: ReplayDestinationOptions = {},
): Promise<DestinationView> {
  await getDestination(db, name);
  await replayConsumer(db, name, options);
  return getDestination(db, name);
}

/** Options of {@link rotateDestinationSecret}. */
export interface RotateSecretOptions {
  /** How long the previous secret keeps signing (both signatures are sent), ms. Default 24 h. */
  readonly overlapMs?: number;
  /** The new secret; default generated. */
  readonly secret?: string;
}

/**
 * Replaces a destination's signing secret. During the overlap every request carries two signatures (new and
 * previous), so receivers can switch at their pace; after it, only the new one.
 *
 * @returns the new secret (shown this once).
 */
export async function rotateDestinationSecret<DB>(
  db: Kysely<DB>,
  name: string,
  options: RotateSecretOptions = {},
): Promise<{ destination: DestinationView; secret: string }> {
  const overlapMs = options.overlapMs ?? DEFAULTS.destination.rotationOverlapMs;
  if (!Number.isInteger(overlapMs) || overlapMs < 0 || overlapMs > 30 * 86_400_000)
    throw new ValidationError('overlapMs must be 0..30 days in ms', 'overlapMs');
  if (options.secret !== undefined) {
    const parsed = destinationInputSchema.shape.secret.safeParse(options.secret);
    if (!parsed.success) throw toValidationError(parsed.error, 'secret');
  }
  const secret = options.secret ?? generateSigningSecret();
  await engineView(db)
    .transaction()
    .execute(async (trx) => {
      const result = await sql`
        update outbox.destination_secrets set previous_secret = signing_secret, signing_secret = ${secret},
          previous_expires_at = now() + make_interval(secs => ${overlapMs / 1000}), updated_at = now()
        where destination = ${name}`.execute(trx);
      if (result.numAffectedRows === 0n) throw new NotFoundError(`No destination named ${name}`);
      await notifyChanged(trx);
    });
  return { destination: await getDestination(db, name), secret };
}

/** What {@link testDestination} saw. */
export interface DestinationTestResult {
  readonly ok: boolean;
  readonly status: number | null;
  readonly durationMs: number;
  readonly error: string | null;
}

/**
 * Sends one signed ping (a CloudEvent of type `postbox.ping`, a fresh id) to a webhook destination now,
 * outside delivery: its circuit, checkpoints and retries are not touched. A broker destination is tested
 * without publishing (its consumers would receive the ping): a connection with its credentials and a
 * check of its stream or exchange (`checkBroker`). Recorded in the attempt log.
 */
export async function testDestination<DB>(
  db: Kysely<DB>,
  name: string,
  options: DestinationAdminOptions = {},
): Promise<DestinationTestResult> {
  const destination = (await readStoredDestinations(engineView(db))).find((row) => row.name === name);
  if (!destination) throw new NotFoundError(`No destination named ${name}`);
  if (destination.kind !== 'webhook') {
    const check = await checkBroker(
      destination.kind,
      name,
      destination.settings,
      destination.connectionUrl ?? destination.settings.url,
    );
    const error = check.ok ? null : `${check.field}: ${check.error}`;
    await sql`insert into outbox.destination_attempts
                (destination, event_id, attempt, outcome, status, duration_ms, error, response_snippet)
              values (${name}, ${randomUUID()}, 1, 'ping', null, ${Math.round(check.durationMs)}, ${error}, null)`.execute(
      engineView(db),
    );
    return { ok: check.ok, status: null, durationMs: check.durationMs, error };
  }
  const sender = new WebhookSender(options.addressPolicy ?? {});
  const id = randomUUID();
  try {
    const secrets = signingSecrets(destination);
    const response = await sender.send({
      url: destination.settings.url,
      id,
      body: JSON.stringify({
        specversion: '1.0',
        id,
        source: CLOUD_EVENT_SOURCE,
        type: 'postbox.ping',
        time: new Date().toISOString(),
        datacontenttype: 'application/json',
        data: { destination: name },
      }),
      secrets,
      headers: destination.headers,
      timeoutMs: destination.settings.timeoutMs,
    });
    const ok = classifyResponse(response.status) === 'delivered';
    const error = ok ? null : describeResponse(response);
    await sql`insert into outbox.destination_attempts
                (destination, event_id, attempt, outcome, status, duration_ms, error, response_snippet)
              values (${name}, ${id}, 1, 'ping', ${response.status ?? null}, ${Math.round(response.durationMs)},
                      ${error}, ${response.snippet || null})`.execute(engineView(db));
    return { ok, status: response.status ?? null, durationMs: response.durationMs, error };
  } finally {
    await sender.close();
  }
}

interface DestinationRow {
  name: string;
  kind: DestinationKind;
  settings: DestinationSettings;
  retry: RetryPolicy;
  breaker: BreakerPolicy;
  state: DestinationView['state'];
  state_reason: string | null;
  declared_in: 'code' | 'runtime';
  created_at: Date;
  event_types: string[];
  stream_types: string[] | null;
  partitions: number;
  on_exhausted: 'dead_letter' | 'block';
  header_names: string[];
  previous_expires_at: Date | null;
  circuit_state: 'closed' | 'open' | 'half_open' | null;
  circuit_since: Date | null;
  consecutive_failures: number | null;
  open_until: Date | null;
  circuit_error: string | null;
  last_failure_at: Date | null;
  last_attempt_error: string | null;
}

/** Every destination (no secrets), by name. */
export async function listDestinations<DB>(db: Kysely<DB>): Promise<DestinationView[]> {
  return readViews(db, undefined);
}

/**
 * One destination (no secrets).
 *
 * @throws NotFoundError
 */
export async function getDestination<DB>(db: Kysely<DB>, name: string): Promise<DestinationView> {
  const [view] = await readViews(db, name);
  if (!view) throw new NotFoundError(`No destination named ${name}`);
  return view;
}

async function readViews<DB>(db: Kysely<DB>, name: string | undefined): Promise<DestinationView[]> {
  const engine = engineView(db);
  const { rows } = await sql<DestinationRow>`
    select d.name, d.kind, d.settings, d.retry, d.breaker, d.state, d.state_reason, d.declared_in, d.created_at,
           c.event_types, c.stream_types, c.partitions, c.on_exhausted,
           (select coalesce(array_agg(k order by k), '{}') from jsonb_object_keys(s.headers) k) as header_names,
           case when s.previous_expires_at > now() then s.previous_expires_at end as previous_expires_at,
           ci.state as circuit_state, ci.since as circuit_since, ci.consecutive_failures, ci.open_until,
           ci.last_error as circuit_error, ci.last_failure_at,
           (select a.error from outbox.destination_attempts a
            where a.destination = d.name and a.error is not null and a.outcome <> 'ping'
            order by a.id desc limit 1) as last_attempt_error
    from outbox.destinations d
    join outbox.consumers c on c.name = d.name
    join outbox.destination_secrets s on s.destination = d.name
    left join outbox.destination_circuits ci on ci.destination = d.name
    where ${name === undefined ? sql`true` : sql`d.name = ${name}`}
    order by d.name`.execute(engine);
  if (rows.length === 0) return [];
  const lag = new Map((await listConsumers(db)).map((summary) => [summary.name, summary]));
  return rows.map((row) => {
    const summary = lag.get(row.name);
    return {
      name: row.name,
      kind: row.kind,
      url: row.settings.url,
      timeoutMs: row.settings.timeoutMs,
      subject: row.settings.subject ?? null,
      createStream: row.kind === 'nats' ? (row.settings.createStream ?? false) : null,
      exchange: row.settings.exchange ?? null,
      routingKey: row.settings.routingKey ?? null,
      topic: row.settings.topic ?? null,
      filter: { types: row.event_types, streamTypes: row.stream_types },
      state: row.state,
      stateReason: row.state_reason,
      retry: row.retry,
      onExhausted: row.on_exhausted,
      maxInFlight: row.partitions,
      breaker: row.breaker,
      headerNames: row.header_names,
      previousSecretExpiresAt: row.previous_expires_at,
      circuit: {
        state: row.circuit_state ?? 'closed',
        since: row.circuit_since ?? row.created_at,
        consecutiveFailures: row.consecutive_failures ?? 0,
        openUntil: row.open_until,
        lastError: row.circuit_error,
        lastFailureAt: row.last_failure_at,
      },
      lag: summary?.lag ?? 0,
      retrying: summary?.retrying ?? 0,
      blocked: summary?.blocked ?? 0,
      deadLetters: summary?.deadLetters ?? 0,
      delivered: summary?.handled ?? 0,
      lastError: row.last_attempt_error ?? row.circuit_error,
      declaredIn: row.declared_in,
      createdAt: row.created_at,
    };
  });
}

/** One delivery attempt as {@link listDestinationAttempts} returns it. */
export interface DestinationAttemptView {
  readonly at: Date;
  readonly eventId: string;
  readonly attempt: number;
  readonly outcome: 'delivered' | 'failed' | 'deferred' | 'ping';
  readonly status: number | null;
  readonly durationMs: number;
  readonly error: string | null;
  readonly responseSnippet: string | null;
}

/** The destination's recent delivery attempts, newest first (the log keeps the last few hundred). */
export async function listDestinationAttempts<DB>(
  db: Kysely<DB>,
  name: string,
  limit = 50,
): Promise<DestinationAttemptView[]> {
  const parsed = z.number().int().min(1).max(500).safeParse(limit);
  if (!parsed.success) throw toValidationError(parsed.error, 'limit');
  const { rows } = await sql<{
    at: Date;
    event_id: string;
    attempt: number;
    outcome: DestinationAttemptView['outcome'];
    status: number | null;
    duration_ms: number;
    error: string | null;
    response_snippet: string | null;
  }>`select at, event_id, attempt, outcome, status, duration_ms, error, response_snippet
     from outbox.destination_attempts where destination = ${name} order by id desc limit ${limit}`.execute(
    engineView(db),
  );
  return rows.map((row) => ({
    at: row.at,
    eventId: row.event_id,
    attempt: row.attempt,
    outcome: row.outcome,
    status: row.status,
    durationMs: row.duration_ms,
    error: row.error,
    responseSnippet: row.response_snippet,
  }));
}

/**
 * Writes the destinations declared in code (`defineDestination`): creates the missing ones, and updates
 * the others to match the code (filter, URL, retry, breaker, headers; a secret given in code that differs
 * from the stored one is rotated in with the default overlap). Refuses a name held by a handler consumer
 * or a runtime destination.
 */
export async function registerDestinations<DB>(
  db: Kysely<DB>,
  definitions: readonly DestinationDefinition[],
  options: DestinationAdminOptions = {},
): Promise<void> {
  for (const { spec } of definitions) {
    await checkAddresses(spec, options.addressPolicy ?? {});
  }
  await engineView(db)
    .transaction()
    .execute(async (trx) => {
      // Processes starting together register the same definitions: one at a time.
      await sql`select pg_advisory_xact_lock(hashtext('postbox:register-destinations'))`.execute(trx);
      for (const { spec } of definitions) {
        const { rows } = await sql<{ declared_in: string | null; kind: string; partitions: number }>`
          select d.declared_in, c.kind, c.partitions from outbox.consumers c
          left join outbox.destinations d on d.name = c.name where c.name = ${spec.name}`.execute(trx);
        const existing = rows[0];
        if (!existing) {
          await insertDestination(trx, spec, spec.secret ?? generateSigningSecret(), 'code');
          continue;
        }
        if (existing.declared_in !== 'code') throw nameTaken(spec.name);
        if (existing.partitions !== spec.maxInFlight) {
          throw new ValidationError(
            `Destination ${spec.name} has maxInFlight ${existing.partitions} in the database but ${spec.maxInFlight} in code; it is fixed at creation`,
            'maxInFlight',
          );
        }
        await sql`update outbox.consumers set event_types = ${[...spec.filter.types]}::text[],
                    stream_types = ${spec.filter.streamTypes ? [...spec.filter.streamTypes] : null}::text[],
                    on_exhausted = ${spec.onExhausted}, updated_at = now()
                  where name = ${spec.name} and (event_types, stream_types, on_exhausted) is distinct from
                    (${[...spec.filter.types]}::text[], ${spec.filter.streamTypes ? [...spec.filter.streamTypes] : null}::text[], ${spec.onExhausted})`.execute(
          trx,
        );
        await sql`update outbox.destinations set settings = ${JSON.stringify(spec.settings)}::jsonb,
                    retry = ${JSON.stringify(spec.retry)}::jsonb, breaker = ${JSON.stringify(spec.breaker)}::jsonb,
                    updated_at = now()
                  where name = ${spec.name} and (settings, retry, breaker) is distinct from
                    (${JSON.stringify(spec.settings)}::jsonb, ${JSON.stringify(spec.retry)}::jsonb, ${JSON.stringify(spec.breaker)}::jsonb)`.execute(
          trx,
        );
        await sql`update outbox.destination_secrets set
                    headers = ${JSON.stringify(spec.headers ?? {})}::jsonb,
                    previous_secret = case when ${spec.secret ?? null}::text is not null and signing_secret <> ${spec.secret ?? null}
                                           then signing_secret else previous_secret end,
                    previous_expires_at = case when ${spec.secret ?? null}::text is not null and signing_secret <> ${spec.secret ?? null}
                                               then now() + make_interval(secs => ${DEFAULTS.destination.rotationOverlapMs / 1000})
                                               else previous_expires_at end,
                    signing_secret = coalesce(${spec.secret ?? null}, signing_secret), updated_at = now()
                  where destination = ${spec.name}
                    and (headers <> ${JSON.stringify(spec.headers ?? {})}::jsonb
                         or signing_secret <> coalesce(${spec.secret ?? null}, signing_secret))`.execute(trx);
        await sql`update outbox.destination_secrets set connection_url = ${spec.connectionUrl ?? null}, updated_at = now()
                  where destination = ${spec.name}
                    and connection_url is distinct from ${spec.connectionUrl ?? null}`.execute(trx);
      }
      await notifyChanged(trx);
    });
}

async function notifyChanged(executor: Executor): Promise<void> {
  await sql`select pg_notify(${WAKE_CHANNEL}, ${DESTINATIONS_CHANGED})`.execute(executor);
}
