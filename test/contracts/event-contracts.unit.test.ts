import { Parser } from '@asyncapi/parser';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { asyncApiDocument, eventContracts } from '../../src/engine/contracts/event-contracts.ts';
import type { DestinationView } from '../../src/engine/index.ts';
import { defineEvent, ValidationError } from '../../src/engine/index.ts';

const OrderPlaced = defineEvent({
  type: 'OrderPlaced',
  streamType: 'order',
  schemaVersion: 2,
  schema: z.object({
    orderId: z.string().uuid(),
    lines: z.array(z.object({ sku: z.string().min(1), quantity: z.number().int().positive() })).min(1),
    note: z.string().optional(),
  }),
  upcasters: { 1: (payload: never) => payload },
});
const PaymentCaptured = defineEvent({
  type: 'payments.PaymentCaptured',
  streamType: 'payment',
  schema: z.object({ amountCents: z.number().int(), currency: z.enum(['EUR', 'USD']) }),
});

function view(
  partial: Partial<DestinationView> & Pick<DestinationView, 'name' | 'kind' | 'url'>,
): DestinationView {
  return {
    timeoutMs: 10_000,
    subject: null,
    createStream: null,
    exchange: null,
    routingKey: null,
    topic: null,
    filter: { types: ['OrderPlaced', 'payments.PaymentCaptured'], streamTypes: null },
    state: 'active',
    stateReason: null,
    retry: { maxAttempts: 8, initialDelayMs: 1000, maxDelayMs: 300_000, jitter: 0.2 },
    onExhausted: 'dead_letter',
    maxInFlight: 8,
    breaker: { failureThreshold: 5, coolDownMs: 30_000 },
    headerNames: [],
    previousSecretExpiresAt: null,
    circuit: {
      state: 'closed',
      since: new Date(),
      consecutiveFailures: 0,
      openUntil: null,
      lastError: null,
      lastFailureAt: null,
    },
    lag: 0,
    retrying: 0,
    blocked: 0,
    deadLetters: 0,
    delivered: 0,
    lastError: null,
    declaredIn: 'runtime',
    createdAt: new Date(),
    ...partial,
  };
}

describe('event contracts', () => {
  it('every registered event type has a JSON Schema at its version, generated from its zod schema', () => {
    const contracts = eventContracts([PaymentCaptured, OrderPlaced]);
    expect(contracts.map((c) => [c.type, c.version])).toEqual([
      ['OrderPlaced', 2],
      ['payments.PaymentCaptured', 1],
    ]);
    const order = contracts[0]?.jsonSchema as { properties: Record<string, unknown>; required: string[] };
    expect(order).toMatchObject({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: '/schemas/OrderPlaced/2.json',
      type: 'object',
      required: ['orderId', 'lines'],
    });
    expect(order.properties.lines).toMatchObject({
      type: 'array',
      minItems: 1,
      items: { required: ['sku', 'quantity'] },
    });
  });

  it('a payload that violates the schema is refused at append with a typed error naming the field', () => {
    expect(() =>
      OrderPlaced.create('o1', { orderId: crypto.randomUUID(), lines: [{ sku: '', quantity: 1 }] }),
    ).toThrow(ValidationError);
    try {
      OrderPlaced.create('o1', { orderId: crypto.randomUUID(), lines: [{ sku: 'a', quantity: 0 }] });
    } catch (error) {
      expect((error as ValidationError).field).toBe('payload.lines.0.quantity');
    }
  });

  it('the AsyncAPI 3.0 document of NATS, RabbitMQ, Kafka and webhook destinations validates with @asyncapi/parser', async () => {
    const contracts = eventContracts([OrderPlaced, PaymentCaptured]);
    const document = asyncApiDocument(contracts, [
      view({
        name: 'bus',
        kind: 'nats',
        url: 'nats://nats.internal:4222',
        subject: 'postbox.{streamType}.{type}',
      }),
      view({
        name: 'rabbit',
        kind: 'rabbitmq',
        url: 'amqp://rabbit.internal:5672/prod',
        exchange: 'postbox',
        routingKey: '{streamType}.{streamId}',
      }),
      view({
        name: 'stream',
        kind: 'kafka',
        url: 'kafkas://kafka-1.internal:9093,kafka-2.internal:9093?sasl=scram-sha-512',
        topic: 'postbox.{streamType}',
      }),
      view({
        name: 'crm',
        kind: 'webhook',
        url: 'https://crm.example.com/hooks/postbox',
        filter: { types: ['OrderPlaced'], streamTypes: null },
      }),
    ]);
    const { document: parsed, diagnostics } = await new Parser().parse(JSON.stringify(document));
    const errors = diagnostics.filter((d) => d.severity === 0);
    expect(errors, JSON.stringify(errors, null, 2)).toEqual([]);
    expect(parsed?.version()).toBe('3.0.0');
    expect(
      parsed
        ?.channels()
        .all()
        .map((c) => [c.id(), c.address()]),
    ).toEqual([
      ['bus', 'postbox.{streamType}.{type}'],
      ['rabbit', '{streamType}.{streamId}'],
      ['stream', 'postbox.{streamType}'],
      ['crm', '/hooks/postbox'],
    ]);
    const kafkaServer = parsed?.servers().get('stream');
    expect([kafkaServer?.host(), kafkaServer?.protocol()]).toEqual(['kafka-1.internal:9093', 'kafka-secure']);
    const kafkaMessage = parsed?.channels().get('stream')?.messages().all()[0];
    const kafkaHeaders = kafkaMessage?.headers()?.json() as { properties: object } | undefined;
    expect(Object.keys(kafkaHeaders?.properties ?? {})).toContain('ce_id');
    expect(kafkaMessage?.bindings().get('kafka')?.value()).toMatchObject({ key: { type: 'string' } });
    const bus = parsed?.channels().get('bus');
    expect(
      bus
        ?.messages()
        .all()
        .map((m) => m.name()),
    ).toEqual(['OrderPlaced', 'payments.PaymentCaptured']);
    const payload = bus?.messages().all()[0]?.payload()?.json() as { required: string[] };
    expect(payload.required).toEqual(['orderId', 'lines']);
    expect(parsed?.operations().all()).toHaveLength(4);
  });

  it('with a subscription endpoint, the GraphQL events subscription is a channel on graphql-ws and graphql-sse', async () => {
    const contracts = eventContracts([OrderPlaced, PaymentCaptured]);
    const document = asyncApiDocument(contracts, [], {
      subscriptionEndpoint: 'https://api.example.com/graphql',
    });
    const { document: parsed, diagnostics } = await new Parser().parse(JSON.stringify(document));
    const errors = diagnostics.filter((d) => d.severity === 0);
    expect(errors, JSON.stringify(errors, null, 2)).toEqual([]);
    const channel = parsed?.channels().get('events-subscription');
    expect(channel?.address()).toBe('/graphql');
    expect(
      channel
        ?.servers()
        .all()
        .map((server) => [server.id(), server.protocol(), server.host()]),
    ).toEqual([
      ['graphql-ws', 'wss', 'api.example.com'],
      ['graphql-sse', 'https', 'api.example.com'],
    ]);
    // One message per event type; the event's payload is that type's JSON Schema.
    const messages = channel?.messages().all() ?? [];
    expect(messages.map((message) => message.name())).toEqual(['OrderPlaced', 'payments.PaymentCaptured']);
    const envelope = messages[0]?.payload()?.json() as {
      properties: { data: { properties: { events: { properties: { payload: { required: string[] } } } } } };
    };
    expect(envelope.properties.data.properties.events.properties.payload.required).toEqual([
      'orderId',
      'lines',
    ]);
    expect(
      parsed
        ?.operations()
        .all()
        .map((operation) => operation.id()),
    ).toEqual(['send-events-subscription']);
  });
});
