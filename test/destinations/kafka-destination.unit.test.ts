import { Kafka, type KafkaMessage } from 'cloudevents';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_KAFKA_TOPIC,
  kafkaCloudEvent,
  renderTopic,
  templateProblem,
} from '../../src/engine/destinations/broker-message.ts';
import { parseDestinationInput } from '../../src/engine/destinations/destination.ts';
import {
  KafkaUrlError,
  kafkaBrokerUrls,
  kafkaUrlWithoutCredentials,
  parseKafkaUrl,
} from '../../src/engine/destinations/kafka-brokers.ts';
import { kafkaProducerOptions, kafkaTransport } from '../../src/engine/destinations/kafka-transport.ts';
import { ValidationError } from '../../src/engine/index.ts';
import type { RecordedEvent } from '../../src/engine/outbox/event.ts';
import { freePort } from '../helpers/brokers.ts';

function recorded(overrides: Partial<RecordedEvent> = {}): RecordedEvent {
  return {
    id: '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b',
    type: 'OrderPlaced',
    streamType: 'order',
    streamId: 'o-42',
    streamVersion: 3,
    position: 1234,
    payload: { orderId: 'o-42', total: 990 },
    metadata: {
      correlationId: 'corr-1',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    },
    occurredAt: new Date('2026-12-02T02:00:00.000Z'),
    ...overrides,
  } as RecordedEvent;
}

describe('kafka destination URL (bootstrap brokers)', () => {
  it('parses a bare list, kafka:// and kafkas:// with SASL credentials; ports default to 9092', () => {
    expect(parseKafkaUrl('broker-1:9092,broker-2')).toEqual({
      brokers: [
        { host: 'broker-1', port: 9092 },
        { host: 'broker-2', port: 9092 },
      ],
      tls: false,
      sasl: undefined,
      saslMechanism: undefined,
    });
    expect(parseKafkaUrl('kafkas://svc%40corp:p%3Ass@k1.example.com:9093,[::1]:9094?sasl=plain')).toEqual({
      brokers: [
        { host: 'k1.example.com', port: 9093 },
        { host: '::1', port: 9094 },
      ],
      tls: true,
      sasl: { mechanism: 'plain', username: 'svc@corp', password: 'p:ss' },
      saslMechanism: 'plain',
    });
    expect(parseKafkaUrl('kafka://u:p@10.0.0.5').sasl?.mechanism).toBe('scram-sha-512');
  });

  it('refuses what cannot be a broker list, saying why', () => {
    const refused: [string, RegExp][] = [
      ['', /names no broker/],
      ['kafka://', /names no broker/],
      ['http://broker:9092', /kafka:\/\/, kafkas:\/\/ or a host:port list/],
      ['broker:abc', /not host:port/],
      ['broker:0', /invalid port/],
      ['broker:70000', /invalid port/],
      ['broker:9092,,other:9092', /not host:port/],
      ['bro ker:9092', /not host:port/],
      ['-bad-.example:9092', /no valid host/],
      ['[not-ipv6]:9092', /not host:port/],
      ['user:pass@broker:9092', /credentials need the kafka:\/\//],
      ['kafka://user@broker:9092', /user:password/],
      ['kafka://u:p@broker:9092?sasl=gssapi', /sasl must be/],
      ['kafka://broker:9092?acks=1', /unknown parameter acks/],
      [Array.from({ length: 33 }, (_, i) => `b${i}:9092`).join(','), /more than 32/],
    ];
    for (const [url, message] of refused) {
      expect(() => parseKafkaUrl(url), url).toThrow(KafkaUrlError);
      expect(() => parseKafkaUrl(url), url).toThrow(message);
    }
  });

  it('shows the list without credentials, and gives one URL per broker to the address policy', () => {
    const parsed = parseKafkaUrl('kafkas://user:secret@k1:9093,[fd00::1]?sasl=scram-sha-256');
    expect(kafkaUrlWithoutCredentials(parsed)).toBe('kafkas://k1:9093,[fd00::1]:9092?sasl=scram-sha-256');
    expect(kafkaBrokerUrls(parsed)).toEqual(['kafka://k1:9093', 'kafka://[fd00::1]:9092']);
    // The settings URL parses back to the same brokers and mechanism: an update re-validates the stored one.
    expect(parseKafkaUrl(kafkaUrlWithoutCredentials(parsed))).toMatchObject({
      brokers: parsed.brokers,
      tls: true,
      sasl: undefined,
      saslMechanism: 'scram-sha-256',
    });
  });

  it('producer options: idempotent, acks=all, the stream-id key partitioned like the Java client, SASL from the URL', () => {
    const options = kafkaProducerOptions(
      'orders',
      'kafkas://svc:pw@k1:9093,k2:9093?sasl=scram-sha-256',
      2000,
    );
    expect(options).toMatchObject({
      clientId: 'postbox-orders',
      bootstrapBrokers: [
        { host: 'k1', port: 9093 },
        { host: 'k2', port: 9093 },
      ],
      idempotent: true,
      acks: -1,
      autocreateTopics: false,
      timeout: 2000,
      tls: {},
      sasl: { mechanism: 'SCRAM-SHA-256', username: 'svc', password: 'pw' },
    });
    // Java's murmur2 partitioner: the key "o-42" lands where a Java or librdkafka producer would put it.
    const partition = options.partitioner?.({ topic: 't' }, Buffer.from('o-42'), { metadata: undefined });
    expect(typeof partition).toBe('number');
    expect(partition).toBeGreaterThanOrEqual(0);
    expect(options.partitioner?.({ topic: 't' }, Buffer.from('o-42'), { metadata: undefined })).toBe(
      partition,
    );
  });
});

describe('kafka topic template', () => {
  it('accepts topic names over the placeholders and refuses the rest', () => {
    expect(templateProblem(DEFAULT_KAFKA_TOPIC, 'kafka')).toBeUndefined();
    expect(templateProblem('events-{streamType}_{type}', 'kafka')).toBeUndefined();
    expect(templateProblem('orders.{nope}', 'kafka')).toMatch(/unknown placeholder \{nope\}/);
    expect(templateProblem('orders/{type}', 'kafka')).toMatch(/letters, digits, \. _ and -/);
    expect(templateProblem('orders {type}', 'kafka')).toMatch(/letters, digits/);
    expect(templateProblem('', 'kafka')).toMatch(/1–200/);
    expect(templateProblem('..', 'kafka')).toMatch(/cannot be \. or \.\./);
    expect(templateProblem('orders.{type', 'kafka')).toMatch(/unbalanced/);
  });

  it('renders a topic per event; substituted values keep only topic characters', () => {
    const event = recorded({ streamType: 'shop/order v2', streamId: 'a.b:c', type: 'Order.Placed' });
    expect(renderTopic(DEFAULT_KAFKA_TOPIC, event)).toBe('postbox.shop_order_v2');
    expect(renderTopic('t.{streamId}.{type}', event)).toBe('t.a_b_c.Order_Placed');
    expect(renderTopic('t-{type}', recorded({ type: '' }))).toBe('t-_');
  });
});

describe('kafka CloudEvents binary mode', () => {
  it('is read back by the cloudevents SDK Kafka binding: ce_ headers, id = event id, key = stream id', () => {
    const event = recorded();
    const message = kafkaCloudEvent(event);
    expect(message.key.toString()).toBe('o-42');
    expect(JSON.parse(message.value.toString())).toEqual(event.payload);
    const headers = Object.fromEntries(
      Object.entries(message.headers).map(([name, value]) => [name, value.toString()]),
    );
    expect(Object.keys(headers).every((name) => name === 'content-type' || name.startsWith('ce_'))).toBe(
      true,
    );
    // An independent decoder: the SDK's own Kafka binding (binary mode), not Postbox code.
    const kafkaMessage: KafkaMessage<string> = {
      headers,
      key: message.key.toString(),
      value: message.value.toString(),
      body: message.value.toString(),
    };
    const decoded = Kafka.toEvent(kafkaMessage) as unknown as Record<string, unknown>;
    expect(decoded).toMatchObject({
      specversion: '1.0',
      id: event.id,
      type: 'OrderPlaced',
      source: '/postbox',
      subject: 'order/o-42',
      time: '2026-12-02T02:00:00.000Z',
      datacontenttype: 'application/json',
      data: event.payload,
      streamtype: 'order',
      streamid: 'o-42',
      streamversion: '3',
      logposition: '1234',
      correlationid: 'corr-1',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      partitionkey: 'o-42',
    });
  });
});

describe('kafka destination input', () => {
  it('applies the default topic, keeps the credentials out of the settings and in the connection URL', () => {
    const spec = parseDestinationInput({
      name: 'stream',
      kind: 'kafka',
      url: 'kafka://svc:s3cret@k1:9092,k2:9092',
      filter: { types: ['OrderPlaced'] },
    });
    expect(spec.settings).toEqual({
      url: 'kafka://k1:9092,k2:9092?sasl=scram-sha-512',
      timeoutMs: 10_000,
      topic: 'postbox.{streamType}',
    });
    expect(JSON.stringify(spec.settings)).not.toContain('s3cret');
    expect(spec.connectionUrl).toBe('kafka://svc:s3cret@k1:9092,k2:9092');
  });

  it('bad input is a typed error naming the field', () => {
    const refused = (input: Record<string, unknown>, field: string, message: RegExp) => {
      let error: unknown;
      try {
        parseDestinationInput({
          name: 'stream',
          kind: 'kafka',
          filter: { types: ['A'] },
          url: 'k1:9092',
          ...input,
        });
      } catch (caught) {
        error = caught;
      }
      expect(error, JSON.stringify(input)).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).field).toBe(field);
      expect((error as ValidationError).message).toMatch(message);
    };
    refused({ url: 'k1:9092,:9092' }, 'url', /url: broker ":9092" is not host:port/);
    refused({ url: 'nats://k1:4222' }, 'url', /not nats:\/\//);
    refused({ topic: 'orders/{type}' }, 'topic', /letters, digits/);
    refused({ topic: 'orders.{stream}' }, 'topic', /unknown placeholder/);
    refused({ subject: 'x.{type}' }, 'subject', /only for nats/);
    refused({ headers: { authorization: 'x' } }, 'headers', /only for webhook/);
    expect(() =>
      parseDestinationInput({
        name: 'n',
        kind: 'nats',
        url: 'nats://h:4222',
        topic: 't',
        filter: { types: ['A'] },
      }),
    ).toThrow(/topic: only for kafka/);
  });
});

describe('kafka transport without a broker', () => {
  it('a closed local port: the delivery is unavailable (retried by the engine) with a clear error, within bounds', async () => {
    const port = await freePort(); // nothing listens on it
    const transport = kafkaTransport(
      'nowhere',
      { url: `kafka://127.0.0.1:${port}`, timeoutMs: 500, topic: DEFAULT_KAFKA_TOPIC },
      `kafka://127.0.0.1:${port}`,
    );
    const started = Date.now();
    try {
      const result = await transport.deliver(recorded());
      expect(result.verdict).toBe('unavailable');
      expect(result.error).toMatch(/^Kafka: /);
      expect(result.error).toMatch(/ECONNREFUSED|connect/i);
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      await transport.close();
    }
    expect(() => transport.deliver(recorded())).toThrow(/changed while delivering/);
  }, 30_000);
});
