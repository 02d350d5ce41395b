import { z } from 'zod';
import type { DestinationView } from '../destinations/admin.ts';
import type { EventDefinition } from '../outbox/event.ts';

/** One event type's payload contract at one schema version. */
export interface EventContract {
  readonly type: string;
  readonly version: number;
  readonly streamType: string | undefined;
  /** JSON Schema (draft 2020-12) generated from the zod schema with zod 4's `toJSONSchema`. */
  readonly jsonSchema: Record<string, unknown>;
}

/**
 * The JSON Schema of every registered event type, generated from its zod schema (zod 4's
 * `z.toJSONSchema`, draft 2020-12, input shape). One per type, at its current schema version: the only
 * version whose schema exists in code (older stored versions are upcast to it before anyone reads them,
 * so readers — consumers, destinations — only ever see this one).
 */
export function eventContracts(definitions: Iterable<EventDefinition>): EventContract[] {
  return [...definitions]
    .sort((a, b) => a.type.localeCompare(b.type))
    .map((definition) => ({
      type: definition.type,
      version: definition.schemaVersion,
      streamType: definition.streamType,
      jsonSchema: {
        ...z.toJSONSchema(definition.schema, { io: 'input', unrepresentable: 'any' }),
        $id: `/schemas/${encodeURIComponent(definition.type)}/${definition.schemaVersion}.json`,
        title: `${definition.type} v${definition.schemaVersion}`,
      },
    }));
}

/** The CloudEvents binary-mode headers every broker message carries, as JSON Schema. */
const CE_HEADERS = {
  type: 'object',
  required: ['ce-specversion', 'ce-id', 'ce-source', 'ce-type', 'ce-subject', 'ce-time', 'content-type'],
  properties: {
    'ce-specversion': { type: 'string', const: '1.0' },
    'ce-id': {
      type: 'string',
      format: 'uuid',
      description: 'The event id (also Nats-Msg-Id / messageId); Kafka: ce_id.',
    },
    'ce-source': { type: 'string', const: '/postbox' },
    'ce-type': { type: 'string' },
    'ce-subject': { type: 'string', description: '<streamType>/<streamId>' },
    'ce-time': { type: 'string', format: 'date-time' },
    'ce-streamtype': { type: 'string' },
    'ce-streamid': { type: 'string' },
    'ce-streamversion': { type: 'string', description: 'Version of the event in its stream (1, 2, …).' },
    'ce-logposition': { type: 'string' },
    'ce-correlationid': { type: 'string' },
    'ce-causationid': { type: 'string' },
    'ce-traceparent': { type: 'string' },
    'content-type': { type: 'string', const: 'application/json' },
  },
} as const;

/** The same headers under the CloudEvents Kafka binding's `ce_` prefix (`content-type` unchanged). */
const KAFKA_CE_HEADERS = {
  type: 'object',
  required: CE_HEADERS.required.map(kafkaHeaderName),
  properties: Object.fromEntries(
    Object.entries(CE_HEADERS.properties).map(([name, schema]) => [kafkaHeaderName(name), schema]),
  ),
};

function kafkaHeaderName(name: string): string {
  return name.startsWith('ce-') ? `ce_${name.slice(3)}` : name;
}

const TEMPLATE_PARAMETERS: Record<string, string> = {
  streamType: 'The stream type (`.`, spaces and wildcards replaced by `_`).',
  streamId: 'The stream id (`.`, spaces and wildcards replaced by `_`).',
  type: 'The event type (`.`, spaces and wildcards replaced by `_`).',
};

/** Options of {@link asyncApiDocument}. */
export interface AsyncApiOptions {
  readonly title?: string;
  /** The document's `info.version`. Default `1.0.0`. */
  readonly version?: string;
  /**
   * The GraphQL endpoint serving the `events` subscription (e.g. `https://api.example.com/graphql`): the
   * document then describes it as a channel on two servers, graphql-ws (WebSocket) and graphql-sse
   * (Server-Sent Events), with a message per event type. Default: none (a library embedding the engine
   * may serve no GraphQL).
   */
  readonly subscriptionEndpoint?: string;
}

/** The `Event` fields of the `events` subscription, as JSON Schema (`payload` is the type's schema). */
function subscriptionEventSchema(payloadRef: string): Record<string, unknown> {
  return {
    type: 'object',
    description:
      'One `events` subscription result: `{ data: { events: Event } }`, with the fields the subscription ' +
      'selected. Resume after a disconnect with `events(after: <cursor>)`: no gap, no duplicate.',
    properties: {
      data: {
        type: 'object',
        properties: {
          events: {
            type: 'object',
            properties: {
              id: { type: 'string', format: 'uuid' },
              cursor: { type: 'string', description: 'Opaque: pass it as `after` to resume.' },
              position: { type: 'string' },
              type: { type: 'string' },
              schemaVersion: { type: 'integer' },
              streamType: { type: 'string' },
              streamId: { type: 'string' },
              streamVersion: { type: 'integer' },
              occurredAt: { type: 'string', format: 'date-time' },
              correlationId: { type: ['string', 'null'] },
              metadata: { type: 'object' },
              payload: { $ref: payloadRef },
            },
          },
        },
      },
    },
  };
}

/**
 * An AsyncAPI 3.0 document of the destinations: one server and one channel per destination (NATS: the
 * subject template; RabbitMQ: the routing key template on its exchange, with the AMQP binding; Kafka: the
 * topic template, `ce_` headers and the key binding; webhook:
 * the URL's path, the CloudEvent in structured mode), one `send` operation per channel, and one message
 * per event type it receives (payload = the type's JSON Schema; broker messages with the `ce-*` headers).
 * URLs are those queries return (no credentials). With `subscriptionEndpoint`, also the GraphQL `events`
 * subscription as a channel.
 */
export function asyncApiDocument(
  contracts: readonly EventContract[],
  destinations: readonly DestinationView[],
  options: AsyncApiOptions = {},
): Record<string, unknown> {
  const byType = new Map(contracts.map((contract) => [contract.type, contract]));
  const servers: Record<string, unknown> = {};
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = {};
  for (const contract of contracts) {
    const key = componentKey(contract.type);
    const { $schema: _ignored, $id: _id, ...schema } = contract.jsonSchema;
    schemas[key] = schema;
    messages[key] = {
      name: contract.type,
      title: `${contract.type} v${contract.version}`,
      contentType: 'application/json',
      payload: { $ref: `#/components/schemas/${key}` },
    };
  }
  for (const destination of destinations) {
    // A kafka URL lists several brokers, which WHATWG URL cannot parse: the server is the first one.
    const url =
      destination.kind === 'kafka'
        ? new URL(destination.url.replace(/^(kafkas?:\/\/[^,/?]+)[^?]*/, '$1'))
        : new URL(destination.url);
    const protocol =
      destination.kind === 'rabbitmq'
        ? 'amqp'
        : destination.kind === 'nats'
          ? 'nats'
          : destination.kind === 'kafka'
            ? url.protocol === 'kafkas:'
              ? 'kafka-secure'
              : 'kafka'
            : url.protocol.slice(0, -1);
    servers[destination.name] = {
      host: url.host,
      protocol,
      ...(destination.kind === 'rabbitmq' && url.pathname.length > 1 ? { pathname: url.pathname } : {}),
      description:
        destination.kind === 'kafka'
          ? `Destination ${destination.name} (kafka; bootstrap brokers ${destination.url}).`
          : `Destination ${destination.name} (${destination.kind}).`,
    };
    const address =
      destination.kind === 'nats'
        ? (destination.subject ?? '')
        : destination.kind === 'rabbitmq'
          ? (destination.routingKey ?? '')
          : destination.kind === 'kafka'
            ? (destination.topic ?? '')
            : url.pathname + url.search;
    const parameters = Object.fromEntries(
      Object.entries(TEMPLATE_PARAMETERS)
        .filter(([name]) => destination.kind !== 'webhook' && address.includes(`{${name}}`))
        .map(([name, description]) => [name, { description }]),
    );
    const channelMessages: Record<string, unknown> = {};
    for (const type of destination.filter.types) {
      const known = byType.get(type);
      const key = componentKey(type);
      channelMessages[key] = known
        ? destination.kind === 'webhook'
          ? {
              name: type,
              contentType: 'application/cloudevents+json',
              summary: 'A CloudEvent in structured mode; data is the payload. Signed per Standard Webhooks.',
              payload: {
                type: 'object',
                required: ['specversion', 'id', 'source', 'type', 'data'],
                properties: { data: { $ref: `#/components/schemas/${key}` } },
              },
            }
          : destination.kind === 'kafka'
            ? {
                name: type,
                contentType: 'application/json',
                headers: KAFKA_CE_HEADERS,
                payload: { $ref: `#/components/schemas/${key}` },
                bindings: {
                  kafka: {
                    key: { type: 'string', description: 'The stream id: a stream stays in one partition.' },
                    bindingVersion: '0.5.0',
                  },
                },
              }
            : {
                name: type,
                contentType: 'application/json',
                headers: CE_HEADERS,
                payload: { $ref: `#/components/schemas/${key}` },
              }
        : { name: type, summary: 'No schema registered in this process for this type.', payload: {} };
    }
    channels[destination.name] = {
      address,
      servers: [{ $ref: `#/servers/${destination.name}` }],
      messages: channelMessages,
      ...(Object.keys(parameters).length ? { parameters } : {}),
      ...(destination.kind === 'rabbitmq'
        ? {
            bindings: {
              amqp: {
                is: 'routingKey',
                exchange: {
                  name: destination.exchange ?? '',
                  type: 'topic',
                  durable: true,
                  autoDelete: false,
                },
              },
            },
          }
        : {}),
    };
    operations[`send-${destination.name}`] = {
      action: 'send',
      channel: { $ref: `#/channels/${destination.name}` },
      summary:
        'Postbox publishes each event once confirmed by the previous one of its stream (per-stream order); ' +
        'a re-send carries the same id (deduplicate on ce-id / ce_id / webhook-id).',
      messages: Object.keys(channelMessages).map((key) => ({
        $ref: `#/channels/${destination.name}/messages/${key}`,
      })),
    };
  }
  if (options.subscriptionEndpoint) {
    const endpoint = new URL(options.subscriptionEndpoint);
    const secure = endpoint.protocol === 'https:';
    servers['graphql-ws'] = {
      host: endpoint.host,
      protocol: secure ? 'wss' : 'ws',
      pathname: endpoint.pathname,
      description: 'GraphQL over WebSocket (graphql-ws protocol, subprotocol graphql-transport-ws).',
    };
    servers['graphql-sse'] = {
      host: endpoint.host,
      protocol: secure ? 'https' : 'http',
      pathname: endpoint.pathname,
      description: 'GraphQL over Server-Sent Events (graphql-sse, distinct connections mode).',
    };
    const channelMessages: Record<string, unknown> = {};
    for (const contract of contracts) {
      const key = componentKey(contract.type);
      channelMessages[key] = {
        name: contract.type,
        contentType: 'application/json',
        payload: subscriptionEventSchema(`#/components/schemas/${key}`),
      };
    }
    channels['events-subscription'] = {
      address: endpoint.pathname,
      title: 'GraphQL `events` subscription',
      description:
        'subscription { events(after: String, filter: EventFilter, fromBeginning: Boolean) { … } }: every ' +
        "committed event matching the filter in the log's gap-safe read order; needs a key with events:read.",
      servers: [{ $ref: '#/servers/graphql-ws' }, { $ref: '#/servers/graphql-sse' }],
      messages: channelMessages,
    };
    operations['send-events-subscription'] = {
      action: 'send',
      channel: { $ref: '#/channels/events-subscription' },
      summary: 'Postbox sends each matching event once, in log order, to every subscriber.',
      messages: Object.keys(channelMessages).map((key) => ({
        $ref: `#/channels/events-subscription/messages/${key}`,
      })),
    };
  }
  return {
    asyncapi: '3.0.0',
    info: {
      title: options.title ?? 'Postbox events',
      version: options.version ?? '1.0.0',
      description: 'Events Postbox delivers to its destinations, with their JSON Schemas.',
    },
    ...(Object.keys(servers).length ? { servers } : {}),
    channels,
    operations,
    components: { schemas, messages },
  };
}

/** A component key AsyncAPI accepts (`^[a-zA-Z0-9.\-_]+$`). */
function componentKey(type: string): string {
  return type.replace(/[^A-Za-z0-9._-]/g, '_');
}
