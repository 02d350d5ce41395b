import { type ConsumerSummary, listConsumers } from '../../engine/index.ts';
import { builder } from '../builder.ts';
import { SCOPES_TO_ADMINISTER } from './scopes.ts';

const ConsumerRef = builder.objectRef<ConsumerSummary>('Consumer').implement({
  description: 'A handler of events (payment, inventory…), summed over its partitions.',
  fields: (t) => ({
    name: t.exposeString('name'),
    status: t.exposeString('status', { description: '`active` or `paused`.' }),
    partitions: t.exposeInt('partitions'),
    lag: t.exposeInt('lag', { description: 'Events not yet delivered.' }),
    oldestPendingMs: t.exposeInt('oldestPendingMs', { description: 'Age of the oldest undelivered event.' }),
    retrying: t.exposeInt('retrying', { description: 'Streams waiting for a retry.' }),
    blocked: t.exposeInt('blocked', { description: 'Streams parked until an operator acts.' }),
    deadLetters: t.exposeInt('deadLetters'),
    handled: t.exposeInt('handled'),
  }),
});

builder.queryFields((t) => ({
  consumers: t.field({
    type: [ConsumerRef],
    authScopes: SCOPES_TO_ADMINISTER,
    description: 'Every registered consumer and how far behind it is.',
    resolve: (_root, _args, context) => listConsumers(context.db),
  }),
}));
