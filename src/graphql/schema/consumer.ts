import {
  type ConsumerSummary,
  type HorizonHolder,
  listConsumers,
  readHorizonHolders,
} from '../../engine/index.ts';
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

const HorizonHolderRef = builder.objectRef<HorizonHolder>('HorizonHolder').implement({
  description:
    'An open transaction with a transaction id. Every reader of the log (consumers, subscriptions) waits for ' +
    'the oldest one of the database server: when delivery stalls, this is what to look at.',
  fields: (t) => ({
    pid: t.exposeInt('pid', { nullable: true, description: 'Backend pid; null for a prepared transaction.' }),
    preparedGid: t.exposeString('preparedGid', { nullable: true }),
    xid: t.exposeString('xid'),
    ageMs: t.exposeInt('ageMs', { description: 'Time since the transaction started.' }),
    state: t.exposeString('state', { nullable: true }),
    applicationName: t.exposeString('applicationName', { nullable: true }),
    database: t.exposeString('database', { nullable: true }),
    user: t.exposeString('user', { nullable: true }),
    query: t.exposeString('query', {
      nullable: true,
      description: "Its current or last statement (null when the service's role may not see it).",
    }),
    holdsHorizon: t.exposeBoolean('holdsHorizon', { description: 'The oldest: the one readers wait for.' }),
  }),
});

builder.queryFields((t) => ({
  horizonHolders: t.field({
    type: [HorizonHolderRef],
    authScopes: SCOPES_TO_ADMINISTER,
    description:
      'The oldest open write transactions, oldest first: the first holds back every reader of the log.',
    resolve: (_root, _args, context) => readHorizonHolders(context.db),
  }),
}));
