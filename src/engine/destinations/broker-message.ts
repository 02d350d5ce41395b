import type { RecordedEvent } from '../outbox/event.ts';
import { CLOUD_EVENT_SOURCE } from './cloud-event.ts';

/** Default NATS subject template of a `nats` destination. */
export const DEFAULT_NATS_SUBJECT = 'postbox.{streamType}.{type}';
/** Default exchange of a `rabbitmq` destination (a durable topic exchange, declared if missing). */
export const DEFAULT_RABBITMQ_EXCHANGE = 'postbox';
/** Default routing key template of a `rabbitmq` destination. */
export const DEFAULT_RABBITMQ_ROUTING_KEY = '{streamType}.{type}';

/**
 * Default topic template of a `kafka` destination: one topic per stream type. Not per event type, unlike
 * the NATS and RabbitMQ defaults: Kafka keeps order only within one partition of one topic, so all the
 * events of a stream must land in the same topic for the stream-id key to keep them in order.
 */
export const DEFAULT_KAFKA_TOPIC = 'postbox.{streamType}';

/** The placeholders a subject or routing key template may use. */
export const TEMPLATE_PLACEHOLDERS = ['streamType', 'streamId', 'type'] as const;

const placeholder = /\{([^{}]*)\}/g;

/**
 * Why a subject, routing key or topic template is not acceptable, or undefined when it is. Placeholders
 * are `{streamType}`, `{streamId}` and `{type}`; NATS subjects are dot-separated tokens without spaces or
 * wildcards (`*`, `>`), RabbitMQ routing keys at most 255 bytes, Kafka topics letters, digits, `.`, `_`
 * and `-` (at most 249, and neither `.` nor `..`).
 */
export function templateProblem(template: string, kind: 'nats' | 'rabbitmq' | 'kafka'): string | undefined {
  for (const match of template.matchAll(placeholder)) {
    if (!(TEMPLATE_PLACEHOLDERS as readonly string[]).includes(match[1] ?? ''))
      return `unknown placeholder {${match[1]}} (use {streamType}, {streamId}, {type})`;
  }
  const literal = template.replace(placeholder, 'x');
  if (/[{}]/.test(literal)) return 'unbalanced { or }';
  if (kind === 'nats') {
    if (literal.length === 0 || literal.length > 255) return 'must be 1–255 characters';
    if (/[\s*>]/.test(literal)) return 'a published subject cannot contain spaces or wildcards (* >)';
    if (literal.split('.').some((token) => token === ''))
      return 'has an empty token (.. or a leading/trailing .)';
  } else if (kind === 'kafka') {
    if (literal.length === 0 || literal.length > 200) return 'must be 1–200 characters before substitution';
    if (!/^[A-Za-z0-9._-]+$/.test(literal)) return 'a Kafka topic has only letters, digits, . _ and -';
    if (literal === '.' || literal === '..') return 'a Kafka topic cannot be . or ..';
  } else {
    if (Buffer.byteLength(literal) > 200) return 'must be at most 200 bytes before substitution';
    if (/[\r\n]/.test(literal)) return 'cannot contain line breaks';
  }
  return undefined;
}

/**
 * A value substituted into a template: the token separator `.`, whitespace and the wildcards `*` `>` `#`
 * become `_`, so a stream id such as `a.b` stays one token and the subject keeps its shape (the stream's
 * subject filter and consumers' bindings match every event).
 */
function token(value: string): string {
  return value.replace(/[.\s*>#]/g, '_') || '_';
}

/** The subject or routing key of one event. */
export function renderTemplate(template: string, event: RecordedEvent): string {
  return template.replace(placeholder, (_, name: string) =>
    token(name === 'streamType' ? event.streamType : name === 'streamId' ? event.streamId : event.type),
  );
}

/**
 * The Kafka topic of one event: as {@link renderTemplate}, but a substituted value keeps only the
 * characters a topic may hold (letters, digits, `_`, `-`); any other, `.` included, becomes `_`.
 */
export function renderTopic(template: string, event: RecordedEvent): string {
  return template.replace(
    placeholder,
    (_, name: string) =>
      (name === 'streamType' ? event.streamType : name === 'streamId' ? event.streamId : event.type).replace(
        /[^A-Za-z0-9_-]/g,
        '_',
      ) || '_',
  );
}

/**
 * The NATS subject filter that covers every subject a template renders: each token holding a
 * placeholder becomes `*` (`postbox.{streamType}.{type}` → `postbox.*.*`). The subject of the JetStream
 * stream a `nats` destination creates when asked to.
 */
export function subjectFilter(template: string): string {
  return template
    .split('.')
    .map((part) => (part.includes('{') ? '*' : part))
    .join('.');
}

/**
 * CloudEvents 1.0 binary content mode, as broker headers: the attributes as `ce-` headers (`ce-id` = the
 * event id, `ce-type`, `ce-source`, `ce-specversion`, `ce-subject` = `<streamType>/<streamId>`, `ce-time`)
 * plus the extensions of the structured form (`ce-streamtype`, `ce-streamid`, `ce-streamversion`,
 * `ce-logposition`, `ce-correlationid`, `ce-causationid`, `ce-traceparent` when known), and `content-type`.
 * The body is the payload alone, as JSON.
 */
export function binaryCloudEvent(event: RecordedEvent): { headers: Record<string, string>; body: Buffer } {
  const metadata = event.metadata;
  const headers: Record<string, string> = {
    'ce-specversion': '1.0',
    'ce-id': event.id,
    'ce-source': CLOUD_EVENT_SOURCE,
    'ce-type': event.type,
    'ce-subject': `${event.streamType}/${event.streamId}`,
    'ce-time': event.occurredAt.toISOString(),
    'ce-streamtype': event.streamType,
    'ce-streamid': event.streamId,
    'ce-streamversion': String(event.streamVersion),
    'ce-logposition': String(event.position),
    'content-type': 'application/json',
  };
  for (const [key, header] of [
    ['correlationId', 'ce-correlationid'],
    ['causationId', 'ce-causationid'],
    ['traceparent', 'ce-traceparent'],
  ] as const) {
    const value = metadata[key];
    if (typeof value === 'string' && !/[\r\n]/.test(value)) headers[header] = value;
  }
  return { headers, body: Buffer.from(JSON.stringify(event.payload)) };
}

/**
 * The CloudEvents Kafka protocol binding's binary mode: the same attributes and extensions as
 * {@link binaryCloudEvent}, with the binding's `ce_` header prefix (`ce_id`, `ce_type`, …) and
 * `content-type`; the message key is the stream id and the value the payload as JSON.
 */
export function kafkaCloudEvent(event: RecordedEvent): {
  key: Buffer;
  headers: Record<string, Buffer>;
  value: Buffer;
} {
  const { headers, body } = binaryCloudEvent(event);
  return {
    key: Buffer.from(event.streamId),
    headers: Object.fromEntries(
      Object.entries(headers).map(([name, value]) => [
        name.startsWith('ce-') ? `ce_${name.slice(3)}` : name,
        Buffer.from(value),
      ]),
    ),
    value: body,
  };
}

/** A broker URL without its user and password (what queries return). */
export function withoutCredentials(url: string): string {
  const parsed = new URL(url);
  parsed.username = '';
  parsed.password = '';
  return parsed.toString();
}
