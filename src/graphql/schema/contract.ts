import {
  asyncApiDocument,
  type EventContract,
  eventContracts,
  listDestinations,
} from '../../engine/index.ts';
import { builder } from '../builder.ts';
import { SCOPES_TO_READ_EVENTS } from './scopes.ts';

const EventTypeVersionRef = builder.objectRef<EventContract>('EventTypeVersion').implement({
  description: 'One schema version of an event type and its JSON Schema.',
  fields: (t) => ({
    version: t.exposeInt('version'),
    jsonSchema: t.field({
      type: 'JSON',
      description: 'JSON Schema (draft 2020-12) generated from the zod schema.',
      resolve: (contract) => contract.jsonSchema,
    }),
  }),
});

const EventTypeRef = builder
  .objectRef<{ name: string; streamType: string | undefined; versions: EventContract[] }>('EventType')
  .implement({
    description: 'A registered event type: its contract for consumers of the log and of the destinations.',
    fields: (t) => ({
      name: t.exposeString('name'),
      streamType: t.string({ nullable: true, resolve: (type) => type.streamType ?? null }),
      versions: t.field({
        type: [EventTypeVersionRef],
        description:
          'Its schema versions with a schema in code: the current one (older stored payloads are upcast to it).',
        resolve: (type) => type.versions,
      }),
    }),
  });

builder.queryFields((t) => ({
  eventTypes: t.field({
    type: [EventTypeRef],
    authScopes: SCOPES_TO_READ_EVENTS,
    description: 'Every registered event type and the JSON Schema of its payload.',
    resolve: (_root, _args, context) =>
      eventContracts(context.registry.values()).map((contract) => ({
        name: contract.type,
        streamType: contract.streamType,
        versions: [contract],
      })),
  }),
  asyncApi: t.field({
    type: 'JSON',
    authScopes: SCOPES_TO_READ_EVENTS,
    description:
      'The AsyncAPI 3.0 document of the destinations (a channel per destination, a message per event type).',
    resolve: async (_root, _args, context) =>
      asyncApiDocument(eventContracts(context.registry.values()), await listDestinations(context.db)),
  }),
}));
