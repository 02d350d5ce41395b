import type { RecordedEvent } from '../outbox/event.ts';
import { CLOUD_EVENT_SOURCE } from './cloud-event.ts';

/** Default NATS subject template of a `nats` destination. */
export const DEFAULT_NATS_SUBJECT = 'postbox.{streamType}.{type}';
/** Default exchange of a `rabbitmq` destination (a durable topic exchange, declared if missing). */
export const DEFAULT_RABBITMQ_EXCHANGE = 'postbox';
/** Default routing key template of a `rabbitmq` destination. */
export const DEFAULT_RABBITMQ_ROUTING_KEY = '{streamType}.{type}';

/** The placeholders a subject or routing key template may use. */
export const TEMPLATE_PLACEHOLDERS = ['streamType', 'streamId', 'type'] as const;

const placeholder = /\{([^{}]*)\}/g;

/**
 * Why a subject or routing key template is not acceptable, or undefined when it is. Placeholders are
 * `{streamType}`, `{streamId}` and `{type}`; NATS subjects are dot-separated tokens without spaces or
 * wildcards (`*`, `>`), RabbitMQ routing keys at most 255 bytes.
 */
export function templateProblem(template: string, kind: 'nats' | 'rabbitmq'): string | undefined {
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

/** A broker URL without its user and password (what queries return). */
export function withoutCredentials(url: string): string {
  const parsed = new URL(url);
  parsed.username = '';
  parsed.password = '';
  return parsed.toString();
}
