import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { RetryPolicy } from '../consumers/consumer.ts';
import { CONSUMER_NAME } from '../db/lock-keys.ts';
import { DEFAULTS } from '../defaults.ts';
import { ValidationError } from '../errors.ts';
import {
  DEFAULT_KAFKA_TOPIC,
  DEFAULT_NATS_SUBJECT,
  DEFAULT_RABBITMQ_EXCHANGE,
  DEFAULT_RABBITMQ_ROUTING_KEY,
  templateProblem,
  withoutCredentials,
} from './broker-message.ts';
import { KafkaUrlError, kafkaUrlWithoutCredentials, parseKafkaUrl } from './kafka-brokers.ts';

/**
 * Kinds of destination: `webhook` (signed HTTP POSTs), `nats` (JetStream publish, checkpoint after the
 * PubAck), `rabbitmq` (publish on a confirm channel, checkpoint after the broker's confirm), `kafka`
 * (idempotent producer, `acks=all`, checkpoint after the ack).
 */
export const DESTINATION_KINDS = ['webhook', 'nats', 'rabbitmq', 'kafka'] as const;
/** A destination's kind. */
export type DestinationKind = (typeof DESTINATION_KINDS)[number];

/** Which events a destination receives. */
export interface DestinationFilter {
  /** Event types (at least one). */
  readonly types: readonly string[];
  /** Only events of these stream types; omitted: all. */
  readonly streamTypes?: readonly string[] | undefined;
}

/** When a destination's circuit opens and for how long. */
export interface BreakerPolicy {
  /** Consecutive failures (5xx, 408, 429, timeouts, connection errors) that open it. Default `5`. */
  readonly failureThreshold: number;
  /** How long it stays open before one half-open probe, ms. Default `30000`. */
  readonly coolDownMs: number;
}

/**
 * What declares a destination: {@link defineDestination} in code, `createDestination` at runtime (the
 * GraphQL mutation and the CLI take the same fields).
 */
export interface DestinationInput {
  /** Unique among destinations and consumers: lower case letters, digits, `-`, `_`. */
  readonly name: string;
  /** `webhook`, `nats`, `rabbitmq` or `kafka`. */
  readonly kind: DestinationKind;
  /**
   * Where it delivers. `webhook`: the http(s) URL POSTed to (no credentials in it; use `headers`).
   * `nats`: `nats://[user:pass@]host:port` (or `nats://token@host:port`). `rabbitmq`:
   * `amqp[s]://user:pass@host:port/vhost`. `kafka`: the bootstrap brokers, `host:port[,host:port…]` or
   * `kafka[s]://[user:pass@]host:port[,…][?sasl=plain|scram-sha-256|scram-sha-512]` (SASL default
   * `scram-sha-512`, port default 9092). A broker URL's credentials are stored as secrets and never
   * returned (queries show the URL without them).
   */
  readonly url: string;
  /**
   * `nats`: the subject template, over `{streamType}`, `{streamId}` and `{type}`. Default
   * `postbox.{streamType}.{type}`. Substituted values have `.`, spaces and wildcards replaced by `_`.
   */
  readonly subject?: string | undefined;
  /**
   * `nats`: create the JetStream stream when no stream captures the subjects: named
   * `postbox_<destination name>`, subjects = the template with every placeholder token as `*`, file
   * storage, a 10-minute duplicate window. Default `false`: the stream is the operator's (its duplicate
   * window is what deduplicates re-publishes after a crash).
   */
  readonly createStream?: boolean | undefined;
  /** `rabbitmq`: the durable topic exchange published to (declared if missing). Default `postbox`. */
  readonly exchange?: string | undefined;
  /** `rabbitmq`: the routing key template, over `{streamType}`, `{streamId}` and `{type}`. Default `{streamType}.{type}`. */
  readonly routingKey?: string | undefined;
  /**
   * `kafka`: the topic template, over `{streamType}`, `{streamId}` and `{type}`. Default
   * `postbox.{streamType}` (every event of a stream in one topic, so the stream-id key keeps them in one
   * partition, in order; `{type}` in it would split a stream across topics). Substituted values keep
   * letters, digits, `_` and `-`; other characters become `_`. The topics are the operator's: not created.
   */
  readonly topic?: string | undefined;
  readonly filter: DestinationFilter;
  /** Where a new destination starts: `now` (default) or `beginning` (the whole log). */
  readonly startFrom?: 'now' | 'beginning' | undefined;
  /** Retry policy; defaults as for consumers (8 attempts, 1 s doubling to 5 min, jitter 0.2). */
  readonly retry?: Partial<RetryPolicy> | undefined;
  /** After the last attempt: `dead_letter` (default; the stream goes on) or `block` (the stream waits). */
  readonly onExhausted?: 'dead_letter' | 'block' | undefined;
  /**
   * Requests (or unconfirmed publishes) in flight at most, across all processes: one per partition, one
   * event of a stream at a time (the partition count; fixed at creation). Default `8`.
   */
  readonly maxInFlight?: number | undefined;
  /** Per request (webhook) or per publish until the broker's ack (brokers), ms. Default `10000`. */
  readonly timeoutMs?: number | undefined;
  /** Extra request headers, e.g. `{ authorization: 'Bearer …' }` (webhooks). Stored as secrets: never returned. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly breaker?: Partial<BreakerPolicy> | undefined;
  /** The signing secret (`whsec_` + base64 of 24–64 bytes). Default: generated at creation. */
  readonly secret?: string | undefined;
}

/** A destination's target settings, without secrets (what is stored in `outbox.destinations.settings`). */
export interface DestinationSettings {
  /** The URL; a broker URL without its credentials. */
  readonly url: string;
  readonly timeoutMs: number;
  /** `nats`: the subject template. */
  readonly subject?: string;
  /** `nats`: create the stream when missing. */
  readonly createStream?: boolean;
  /** `rabbitmq`: the topic exchange. */
  readonly exchange?: string;
  /** `rabbitmq`: the routing key template. */
  readonly routingKey?: string;
  /** `kafka`: the topic template. */
  readonly topic?: string;
}

/** A validated destination with every default applied (what is stored). */
export interface DestinationSpec {
  readonly name: string;
  readonly kind: DestinationKind;
  readonly settings: DestinationSettings;
  /** Brokers: the URL as given, credentials included (a secret). Undefined for webhooks. */
  readonly connectionUrl: string | undefined;
  readonly filter: { readonly types: readonly string[]; readonly streamTypes: readonly string[] | null };
  readonly startFrom: 'now' | 'beginning';
  readonly retry: RetryPolicy;
  readonly onExhausted: 'dead_letter' | 'block';
  readonly maxInFlight: number;
  readonly breaker: BreakerPolicy;
  readonly headers: Readonly<Record<string, string>> | undefined;
  readonly secret: string | undefined;
}

const name = z.string().regex(CONSUMER_NAME, 'lower case letters, digits, - and _, at most 63');
const typeName = z.string().min(1).max(200);
/** Header names a destination may not set: the ones the engine signs or HTTP owns. */
const RESERVED_HEADERS = new Set([
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'content-type',
  'content-length',
  'host',
  'connection',
  'transfer-encoding',
]);
const headers = z
  .record(
    z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$/, 'not an HTTP header name'),
    z
      .string()
      .max(4000)
      .regex(/^[^\r\n]*$/, 'header values cannot span lines'),
  )
  .refine((value) => Object.keys(value).every((key) => !RESERVED_HEADERS.has(key.toLowerCase())), {
    message: 'sets a header the engine owns (webhook-*, content-type, host…)',
  })
  .refine((value) => Object.keys(value).length <= 20, { message: 'at most 20 headers' });
const secret = z
  .string()
  .regex(/^whsec_[A-Za-z0-9+/]{32,88}={0,2}$/, 'must be whsec_ + base64 of 24–64 bytes');
const webhookUrl = z
  .string()
  .max(2000)
  .refine(
    (value) => {
      try {
        const parsed = new URL(value);
        return (parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.hostname !== '';
      } catch {
        return false;
      }
    },
    { message: 'must be an absolute http(s) URL' },
  )
  .refine((value) => !/^[a-z]+:\/\/[^/]*@/i.test(value), { message: 'must not carry credentials' });
const BROKER_PROTOCOLS: Record<'nats' | 'rabbitmq', readonly string[]> = {
  nats: ['nats:', 'tls:'],
  rabbitmq: ['amqp:', 'amqps:'],
};

/** Checks the fields that depend on the kind; issues carry the input's field names. */
function checkKindFields(value: z.infer<typeof baseInputSchema>, context: z.core.$RefinementCtx): void {
  const issue = (path: string, message: string) =>
    context.addIssue({ code: 'custom', path: [path], message, input: value });
  if (value.kind === 'webhook') {
    const parsed = webhookUrl.safeParse(value.url);
    if (!parsed.success) issue('url', parsed.error.issues[0]?.message ?? 'invalid');
  } else if (value.kind === 'kafka') {
    try {
      parseKafkaUrl(value.url);
    } catch (error) {
      if (!(error instanceof KafkaUrlError)) throw error;
      issue('url', error.message);
    }
    if (value.headers !== undefined) issue('headers', 'only for webhook destinations');
  } else {
    const protocols = BROKER_PROTOCOLS[value.kind];
    let parsed: URL | undefined;
    try {
      parsed = new URL(value.url);
    } catch {}
    if (!parsed || !protocols.includes(parsed.protocol) || parsed.hostname === '')
      issue('url', `must be a ${protocols.map((p) => `${p}//`).join(' or ')} URL with a host`);
    if (value.headers !== undefined) issue('headers', 'only for webhook destinations');
  }
  const only = (
    field: 'subject' | 'createStream' | 'exchange' | 'routingKey' | 'topic',
    kind: DestinationKind,
  ) => {
    if (value[field] !== undefined && value.kind !== kind) issue(field, `only for ${kind} destinations`);
  };
  only('subject', 'nats');
  only('createStream', 'nats');
  only('exchange', 'rabbitmq');
  only('routingKey', 'rabbitmq');
  only('topic', 'kafka');
  if (value.subject !== undefined) {
    const problem = templateProblem(value.subject, 'nats');
    if (problem) issue('subject', problem);
  }
  if (value.routingKey !== undefined) {
    const problem = templateProblem(value.routingKey, 'rabbitmq');
    if (problem) issue('routingKey', problem);
  }
  if (value.topic !== undefined) {
    const problem = templateProblem(value.topic, 'kafka');
    if (problem) issue('topic', problem);
  }
}

const baseInputSchema = z.object({
  name,
  kind: z.enum(DESTINATION_KINDS),
  url: z.string().max(2000),
  subject: z.string().max(255).optional(),
  createStream: z.boolean().optional(),
  exchange: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,200}$/, 'letters, digits, _ . : - (at most 200)')
    .refine((value) => !value.startsWith('amq.'), { message: 'amq.* exchanges are the broker’s' })
    .optional(),
  routingKey: z.string().max(255).optional(),
  topic: z.string().max(255).optional(),
  filter: z.object({
    types: z.array(typeName).min(1, 'needs at least one event type').max(200),
    streamTypes: z.array(typeName).min(1).max(200).optional(),
  }),
  startFrom: z.enum(['now', 'beginning']).optional(),
  retry: z
    .object({
      maxAttempts: z.number().int().min(1).max(100).optional(),
      initialDelayMs: z.number().int().min(0).max(86_400_000).optional(),
      maxDelayMs: z.number().int().min(0).max(86_400_000).optional(),
      jitter: z.number().min(0).max(1).optional(),
    })
    .optional(),
  onExhausted: z.enum(['dead_letter', 'block']).optional(),
  maxInFlight: z.number().int().min(1).max(256).optional(),
  timeoutMs: z.number().int().min(100).max(120_000).optional(),
  headers: headers.optional(),
  breaker: z
    .object({
      failureThreshold: z.number().int().min(1).max(1000).optional(),
      coolDownMs: z.number().int().min(100).max(86_400_000).optional(),
    })
    .optional(),
  secret: secret.optional(),
});

/** The input schema (zod): field paths in its issues are the input's. */
export const destinationInputSchema = baseInputSchema.superRefine(checkKindFields);

/** Turns a zod error into the engine's {@link ValidationError} (first issue, its dotted path). */
export function toValidationError(error: z.ZodError, prefix = ''): ValidationError {
  const issue = error.issues[0];
  const field = issue ? [prefix, ...issue.path.map(String)].filter(Boolean).join('.') : undefined;
  return new ValidationError(`${field ?? 'input'}: ${issue?.message ?? 'invalid'}`, field);
}

/**
 * Validates a destination's input and applies the defaults ({@link DEFAULTS}.destination).
 *
 * @throws ValidationError naming the first bad field.
 */
export function parseDestinationInput(input: unknown): DestinationSpec {
  const parsed = destinationInputSchema.safeParse(input);
  if (!parsed.success) throw toValidationError(parsed.error);
  const value = parsed.data;
  const defaults = DEFAULTS.destination;
  const retry: RetryPolicy = { ...defaults.retry, ...stripUndefined(value.retry ?? {}) };
  if (retry.maxDelayMs < retry.initialDelayMs)
    throw new ValidationError('retry.maxDelayMs must be ≥ retry.initialDelayMs', 'retry.maxDelayMs');
  const timeoutMs = value.timeoutMs ?? defaults.timeoutMs;
  const settings: DestinationSettings =
    value.kind === 'webhook'
      ? { url: new URL(value.url).toString(), timeoutMs }
      : value.kind === 'nats'
        ? {
            url: withoutCredentials(value.url),
            timeoutMs,
            subject: value.subject ?? DEFAULT_NATS_SUBJECT,
            createStream: value.createStream ?? false,
          }
        : value.kind === 'rabbitmq'
          ? {
              url: withoutCredentials(value.url),
              timeoutMs,
              exchange: value.exchange ?? DEFAULT_RABBITMQ_EXCHANGE,
              routingKey: value.routingKey ?? DEFAULT_RABBITMQ_ROUTING_KEY,
            }
          : {
              url: kafkaUrlWithoutCredentials(parseKafkaUrl(value.url)),
              timeoutMs,
              topic: value.topic ?? DEFAULT_KAFKA_TOPIC,
            };
  return {
    name: value.name,
    kind: value.kind,
    settings,
    connectionUrl: value.kind === 'webhook' ? undefined : value.url,
    filter: { types: [...new Set(value.filter.types)], streamTypes: value.filter.streamTypes ?? null },
    startFrom: value.startFrom ?? defaults.startFrom,
    retry,
    onExhausted: value.onExhausted ?? defaults.onExhausted,
    maxInFlight: value.maxInFlight ?? defaults.maxInFlight,
    breaker: { ...defaults.breaker, ...stripUndefined(value.breaker ?? {}) },
    headers: value.headers,
    secret: value.secret,
  };
}

/** A fresh signing secret: `whsec_` + base64 of 32 random bytes (the Standard Webhooks format). */
export function generateSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** A destination declared in code: pass it to `startPostbox({ destinations })`. */
export interface DestinationDefinition {
  readonly spec: DestinationSpec;
}

/**
 * Declares a destination in code, next to the consumers. `startPostbox` writes it to the database at
 * start (created, or updated to match the code) so it is managed like one created at runtime; its
 * signing secret is the one given, or generated once and never shown (give one to share it).
 *
 * @example
 * const billing = defineDestination({
 *   name: 'billing', kind: 'webhook', url: 'https://billing.example.com/hooks/postbox',
 *   filter: { types: ['OrderPlaced', 'PaymentCaptured'] }, secret: process.env.BILLING_WEBHOOK_SECRET,
 * });
 */
export function defineDestination(input: DestinationInput): DestinationDefinition {
  return Object.freeze({ spec: parseDestinationInput(input) });
}

function stripUndefined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}
