// The Kafka client is @platformatic/kafka: pure TypeScript (no native addon), maintained, with an
// idempotent producer and the Java client's murmur2 partitioning. The alternatives: kafkajs is
// unmaintained since 2023; @confluentinc/kafka-javascript needs librdkafka binaries downloaded from
// GitHub at install (its fallback builds librdkafka from sources also fetched from GitHub), so it does not
// install on machines that reach only the npm registry.
import {
  compatibilityPartitioner,
  ProduceAcks,
  Producer,
  type ProducerOptions,
  SASLMechanisms,
} from '@platformatic/kafka';
import type { RecordedEvent } from '../outbox/event.ts';
import { kafkaCloudEvent, renderTopic } from './broker-message.ts';
import type { DestinationSettings } from './destination.ts';
import { type KafkaConnection, parseKafkaUrl } from './kafka-brokers.ts';
import { brokerTransport, type DestinationTransport } from './transport.ts';

/** A Kafka producer with Buffer keys, values and headers (the client's defaults). */
type KafkaProducer = Producer<Buffer, Buffer, Buffer, Buffer>;

const SASL: Record<NonNullable<KafkaConnection['sasl']>['mechanism'], string> = {
  plain: SASLMechanisms.PLAIN,
  'scram-sha-256': SASLMechanisms.SCRAM_SHA_256,
  'scram-sha-512': SASLMechanisms.SCRAM_SHA_512,
};

/** The `client.id` a destination's producer shows to the brokers (quotas, request logs). */
export function kafkaClientId(destination: string): string {
  return `postbox-${destination}`;
}

/**
 * The producer options of a `kafka` destination: idempotent (the brokers drop a batch the client sends
 * again after a lost response, so its own retries neither duplicate nor reorder), `acks` = all (-1: every
 * in-sync replica has it before the ack), the Java client's murmur2 partitioner on the key (the stream id:
 * a stream stays in one partition, the same one a Java or librdkafka producer picks), topics not
 * auto-created, `timeoutMs` per request, 3 client retries 250 ms apart (never 0 or 1: for an
 * idempotent producer the client turns those into unlimited retries, and a publish to a dead broker
 * would never answer).
 */
export function kafkaProducerOptions(
  destination: string,
  connectionUrl: string,
  timeoutMs: number,
): ProducerOptions<Buffer, Buffer, Buffer, Buffer> {
  const connection = parseKafkaUrl(connectionUrl);
  return {
    clientId: kafkaClientId(destination),
    bootstrapBrokers: connection.brokers.map(({ host, port }) => ({ host, port })),
    idempotent: true,
    acks: ProduceAcks.ALL,
    partitioner: compatibilityPartitioner,
    autocreateTopics: false,
    timeout: timeoutMs,
    connectTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    retries: 3,
    retryDelay: 250,
    ...(connection.tls ? { tls: {} } : {}),
    ...(connection.sasl
      ? {
          sasl: {
            mechanism: SASL[
              connection.sasl.mechanism
            ] as (typeof SASLMechanisms)[keyof typeof SASLMechanisms],
            username: connection.sasl.username,
            password: connection.sasl.password,
          },
        }
      : {}),
  };
}

/**
 * Opens a producer and asks the cluster for its metadata (address, TLS, SASL credentials): a producer
 * that answered, or a rejection saying why. Used by delivery, creation and `testDestination`. `retries`
 * (default 3) must be at least 2 (see {@link kafkaProducerOptions}).
 */
export async function openKafka(
  destination: string,
  connectionUrl: string,
  timeoutMs: number,
  options: { readonly retries?: number } = {},
): Promise<KafkaProducer> {
  const producer = new Producer<Buffer, Buffer, Buffer, Buffer>({
    ...kafkaProducerOptions(destination, connectionUrl, timeoutMs),
    ...(options.retries !== undefined ? { retries: options.retries } : {}),
  });
  try {
    await producer.metadata({ topics: [], autocreateTopics: false });
    return producer;
  } catch (error) {
    await producer.close(true).catch(() => {});
    throw error;
  }
}

/** A Kafka client error in one line: an aggregate's own message and its first cause. */
export function describeKafkaError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const causes = error instanceof AggregateError ? error.errors : [];
  const first = causes.find((cause): cause is Error => cause instanceof Error);
  const inner = first ? describeKafkaError(first) : undefined;
  return inner && !error.message.includes(inner) ? `${error.message}: ${inner}` : error.message;
}

/**
 * The `kafka` kind: produces the event to its rendered topic with the stream id as the message key (one
 * stream → one partition, in order: the engine hands over a stream's next event only after this one's
 * ack), the payload as the value and the CloudEvents Kafka binding's binary-mode headers (`ce_id` = the
 * event id — the id consumers deduplicate on — `ce_type`, …, `content-type`). Idempotent producer with
 * `acks=all`; `delivered` once the brokers acknowledged, `unavailable` on any error (no leader, unknown
 * topic, timeout, broker down): the engine produces the same event again after its backoff. A re-produce
 * the engine makes after an ack was lost is a new record (the idempotent producer deduplicates its own
 * retries only), carrying the same `ce_id`.
 *
 * One producer per destination, opened on first use and kept (the client reconnects by itself; see
 * {@link brokerTransport}); {@link DestinationTransport.close} closes it once the publishes in flight are done.
 */
export function kafkaTransport(
  destination: string,
  settings: DestinationSettings,
  connectionUrl: string,
): DestinationTransport {
  const topic = settings.topic ?? '';
  return brokerTransport<KafkaProducer>(destination, {
    open: () => openKafka(destination, connectionUrl, settings.timeoutMs),
    async publish(producer, event: RecordedEvent) {
      const { key, headers, value } = kafkaCloudEvent(event);
      await producer.send({ messages: [{ topic: renderTopic(topic, event), key, value, headers }] });
    },
    close: (producer) => producer.close(true),
    describe: (error) => `Kafka: ${describeKafkaError(error)}`,
  });
}
