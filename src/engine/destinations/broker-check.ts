import { ValidationError } from '../errors.ts';
import type { DestinationKind, DestinationSettings } from './destination.ts';
import { describeKafkaError, openKafka } from './kafka-transport.ts';
import { checkNatsTarget, openNats } from './nats-transport.ts';
import { openAmqp } from './rabbitmq-transport.ts';

/** What a connection test to a broker found. */
export interface BrokerCheck {
  readonly ok: boolean;
  readonly durationMs: number;
  /** The field at fault (`url` for connection and credentials, `subject`, `exchange` or `topic`) and why. */
  readonly field: 'url' | 'subject' | 'exchange' | 'topic' | undefined;
  readonly error: string | undefined;
}

/**
 * Connects to a broker destination's broker as delivery would, and checks its target: NATS — the
 * connection (address, credentials) and a JetStream stream capturing the subjects (unless `createStream`);
 * RabbitMQ — the connection (address, credentials, vhost), a confirm channel, and the topic exchange
 * (declared when missing; refused when it exists with another type); Kafka — the cluster's metadata
 * (address, TLS, SASL credentials) and, when the topic template has no placeholder, that the topic exists
 * (topics are not created). Publishes nothing.
 */
export async function checkBroker(
  kind: Exclude<DestinationKind, 'webhook'>,
  destination: string,
  settings: DestinationSettings,
  connectionUrl: string,
): Promise<BrokerCheck> {
  const started = performance.now();
  const result = (field: BrokerCheck['field'], error: unknown): BrokerCheck => ({
    ok: field === undefined,
    durationMs: performance.now() - started,
    field,
    error: field === undefined ? undefined : describe(error),
  });
  if (kind === 'nats') {
    let nc: Awaited<ReturnType<typeof openNats>>;
    try {
      nc = await openNats(connectionUrl, settings.timeoutMs);
    } catch (error) {
      return result('url', error);
    }
    try {
      await checkNatsTarget(nc, destination, settings);
      return result(undefined, undefined);
    } catch (error) {
      return result('subject', error);
    } finally {
      await nc.close().catch(() => {});
    }
  }
  if (kind === 'kafka') {
    let producer: Awaited<ReturnType<typeof openKafka>>;
    try {
      // Few client retries, so a check answers within a few timeouts (the client turns 0 or 1 into
      // unlimited retries for an idempotent producer).
      producer = await openKafka(destination, connectionUrl, settings.timeoutMs, { retries: 2 });
    } catch (error) {
      return result('url', error);
    }
    try {
      const topic = settings.topic ?? '';
      if (!topic.includes('{')) {
        const metadata = await producer.metadata({ topics: [topic], autocreateTopics: false });
        if (!metadata.topics.has(topic)) throw new Error(`topic ${topic} does not exist`);
      }
      return result(undefined, undefined);
    } catch (error) {
      return result('topic', error);
    } finally {
      await producer.close(true).catch(() => {});
    }
  }
  let stage: 'url' | 'exchange' = 'url';
  try {
    const opened = await openAmqp(destination, connectionUrl, {
      ...settings,
      // The exchange is declared in a second step, so a refusal names the right field.
      exchange: '',
    });
    stage = 'exchange';
    try {
      await opened.channel.assertExchange(settings.exchange ?? '', 'topic', { durable: true });
    } finally {
      await opened.connection.close().catch(() => {});
    }
    return result(undefined, undefined);
  } catch (error) {
    return result(stage, error);
  }
}

/** {@link checkBroker}, throwing a {@link ValidationError} naming the field when it failed. */
export async function requireBroker(
  kind: Exclude<DestinationKind, 'webhook'>,
  destination: string,
  settings: DestinationSettings,
  connectionUrl: string,
): Promise<void> {
  const check = await checkBroker(kind, destination, settings, connectionUrl);
  if (!check.ok) throw new ValidationError(`${check.field}: ${check.error}`, check.field);
}

function describe(error: unknown): string {
  const message = describeKafkaError(error);
  // amqplib's refusals carry the broker's reply text; an unreachable address only an errno.
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}
