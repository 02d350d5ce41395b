import type { Kysely } from 'kysely';
import {
  type ConsumerSummary,
  type DeadLetterDetail,
  type HorizonHolder,
  listConsumers,
  listPartitions,
  listStuckStreams,
  NotFoundError,
  type PartitionState,
  pauseConsumer,
  previewReplay,
  type ReplayPreview,
  readHorizonHolders,
  redriveDeadLetters,
  replayConsumer,
  resumeConsumer,
  type StuckStream,
  searchDeadLetters,
  ValidationError,
} from '../../engine/index.ts';
import { builder } from '../builder.ts';
import { ERROR_TYPES } from './errors.ts';
import { EventRef } from './event.ts';
import { SCOPES_TO_ADMINISTER } from './scopes.ts';

// The operator's surface: what a consumer is doing, what is stuck, and the actions pause, resume, replay and
// redrive (admin scope, like the CLI's). The console is built on these fields, not on a back door.

const PartitionRef = builder.objectRef<PartitionState>('ConsumerPartition').implement({
  description:
    'One partition of a consumer: a stream always lands in the same one, and it is delivered in order.',
  fields: (t) => ({
    partition: t.exposeInt('partition'),
    checkpointPosition: t.exposeString('checkpointPosition', {
      description: 'Position of the last settled event (`0` before the first).',
    }),
    headPosition: t.exposeString('headPosition', { description: 'Newest event this partition receives.' }),
    lag: t.exposeInt('lag', { description: 'Events not yet delivered.' }),
    oldestPendingAt: t.field({ type: 'DateTime', nullable: true, resolve: (p) => p.oldestPendingAt }),
    retrying: t.exposeInt('retrying'),
    blocked: t.exposeInt('blocked'),
    deadLetters: t.exposeInt('deadLetters'),
    handled: t.exposeInt('handled'),
    updatedAt: t.field({ type: 'DateTime', resolve: (p) => p.updatedAt }),
  }),
});

const StuckStreamRef = builder.objectRef<StuckStream>('StuckStream').implement({
  description:
    'A stream waiting on a failed event: retrying (`nextAttemptAt` set) or blocked until redriven.',
  fields: (t) => ({
    streamType: t.exposeString('streamType'),
    streamId: t.exposeString('streamId'),
    partition: t.exposeInt('partition'),
    eventPosition: t.exposeString('eventPosition', { description: 'The failing event.' }),
    streamVersion: t.exposeInt('streamVersion'),
    attempts: t.exposeInt('attempts'),
    nextAttemptAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Null: blocked until an operator redrives it.',
      resolve: (s) => s.nextAttemptAt,
    }),
    lastError: t.exposeString('lastError'),
    firstFailedAt: t.field({ type: 'DateTime', resolve: (s) => s.firstFailedAt }),
    lastFailedAt: t.field({ type: 'DateTime', resolve: (s) => s.lastFailedAt }),
  }),
});

const ReplayPreviewRef = builder.objectRef<ReplayPreview>('ReplayPreview').implement({
  description:
    'What `replayConsumer` with the same position would re-deliver if it ran now (events appended later ' +
    'are delivered too, as new ones).',
  fields: (t) => ({
    events: t.exposeInt('events', { description: 'Committed events of its types after the position.' }),
    streams: t.exposeInt('streams', { description: 'Distinct streams among them.' }),
    firstPosition: t.exposeString('firstPosition', { nullable: true }),
    lastPosition: t.exposeString('lastPosition', { nullable: true }),
    eventTypes: t.exposeStringList('eventTypes', { description: 'The event types the consumer handles.' }),
  }),
});

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
    checkpoints: t.field({
      type: [PartitionRef],
      description: 'Each partition: checkpoint, head, lag, retrying, blocked and dead letters.',
      resolve: (consumer, _args, context) => listPartitions(context.db, consumer.name),
    }),
    stuckStreams: t.field({
      type: [StuckStreamRef],
      description: 'Streams waiting on a failed event, the longest-failing first (at most `first`, ≤ 500).',
      args: { first: t.arg.int({ required: false, description: '0–500. Default 100.' }) },
      resolve: (consumer, args, context) => listStuckStreams(context.db, consumer.name, args.first ?? 100),
    }),
    replayPreview: t.field({
      type: ReplayPreviewRef,
      description:
        'What a replay after `afterPosition` (default: the start of the log) would re-deliver now.',
      args: { afterPosition: t.arg.string({ required: false }) },
      resolve: (consumer, args, context) => {
        const afterPosition = args.afterPosition ?? undefined;
        if (afterPosition !== undefined && !/^\d{1,18}$/.test(afterPosition))
          throw new ValidationError('afterPosition must be a log position', 'afterPosition');
        return previewReplay(context.db, consumer.name, afterPosition === undefined ? {} : { afterPosition });
      },
    }),
  }),
});

const DeadLetterRef = builder.objectRef<DeadLetterDetail>('DeadLetter').implement({
  description: 'An event a consumer gave up on, open until it is redriven and delivered.',
  fields: (t) => ({
    id: t.exposeID('id'),
    consumer: t.exposeString('consumer'),
    partition: t.exposeInt('partition'),
    attempts: t.exposeInt('attempts'),
    error: t.exposeString('error', { description: 'The last attempt’s error message.' }),
    stack: t.exposeString('stack', { nullable: true }),
    firstFailedAt: t.field({ type: 'DateTime', resolve: (d) => d.firstFailedAt }),
    deadAt: t.field({ type: 'DateTime', resolve: (d) => d.deadAt }),
    redriveRequestedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Set while a redrive is queued.',
      resolve: (d) => d.redriveRequestedAt,
    }),
    event: t.field({
      type: EventRef,
      description: 'The event as stored (not upcast: it may be why delivery failed).',
      resolve: (d) => d.event,
    }),
  }),
});

const DeadLetterConnection = builder.connectionObject(
  { type: DeadLetterRef, name: 'DeadLetterConnection', description: 'Open dead letters, oldest first.' },
  { name: 'DeadLetterEdge' },
);

const DEAD_LETTER_CURSOR_PREFIX = 'dead-letter:v1:';
const encodeDeadLetterCursor = (id: string) =>
  Buffer.from(`${DEAD_LETTER_CURSOR_PREFIX}${id}`).toString('base64url');
function decodeDeadLetterCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = text.startsWith(DEAD_LETTER_CURSOR_PREFIX) ? text.slice(DEAD_LETTER_CURSOR_PREFIX.length) : '';
  if (!/^\d{1,18}$/.test(id)) throw new ValidationError('after is not a valid cursor', 'after');
  return id;
}

async function findConsumer<DB>(db: Kysely<DB>, name: string): Promise<ConsumerSummary> {
  const consumer = (await listConsumers(db)).find((candidate) => candidate.name === name);
  if (!consumer) throw new NotFoundError(`No consumer named ${name}`);
  return consumer;
}

builder.queryFields((t) => ({
  consumers: t.field({
    type: [ConsumerRef],
    authScopes: SCOPES_TO_ADMINISTER,
    description: 'Every registered consumer and how far behind it is.',
    resolve: (_root, _args, context) => listConsumers(context.db),
  }),
  consumer: t.field({
    type: ConsumerRef,
    nullable: true,
    authScopes: SCOPES_TO_ADMINISTER,
    description: 'One consumer by name, or null.',
    args: { name: t.arg.string({ required: true }) },
    resolve: async (_root, args, context) =>
      (await listConsumers(context.db)).find((consumer) => consumer.name === args.name) ?? null,
  }),
  deadLetters: t.field({
    type: DeadLetterConnection,
    authScopes: SCOPES_TO_ADMINISTER,
    description: 'Open dead letters, oldest first; every given filter must hold.',
    args: {
      consumer: t.arg.string({ required: false }),
      type: t.arg.string({ required: false, description: 'Event type.' }),
      errorContains: t.arg.string({
        required: false,
        description: 'Text the error contains, case-insensitive (at most 200 characters).',
      }),
      first: t.arg.int({ required: false, description: 'Page size, 1–500. Default 50.' }),
      after: t.arg.string({ required: false }),
    },
    resolve: async (_root, args, context) => {
      const afterId = args.after ? decodeDeadLetterCursor(args.after) : undefined;
      const { letters, hasMore } = await searchDeadLetters(context.db, {
        ...(args.consumer ? { consumer: args.consumer } : {}),
        ...(args.type ? { eventType: args.type } : {}),
        ...(args.errorContains ? { errorContains: args.errorContains } : {}),
        ...(afterId ? { afterId } : {}),
        first: args.first ?? 50,
      });
      const edges = letters.map((node) => ({ cursor: encodeDeadLetterCursor(node.id), node }));
      return {
        edges,
        pageInfo: {
          hasNextPage: hasMore,
          hasPreviousPage: afterId !== undefined,
          startCursor: edges[0]?.cursor ?? null,
          endCursor: edges.at(-1)?.cursor ?? null,
        },
      };
    },
  }),
}));

const ReplayConsumerInput = builder.inputType('ReplayConsumerInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    afterPosition: t.string({
      required: false,
      description: 'Re-deliver the events after this log position; default: from the start of the log.',
    }),
  }),
});

builder.mutationFields((t) => ({
  pauseConsumer: t.field({
    type: ConsumerRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description: 'Stops delivering to a consumer (in-flight batches finish; events keep accumulating).',
    args: { name: t.arg.string({ required: true }) },
    errors: {
      types: [ERROR_TYPES.NotFoundError],
      union: { name: 'PauseConsumerResult' },
      result: { name: 'PauseConsumerSuccess' },
      dataField: { name: 'consumer' },
    },
    resolve: async (_root, args, context) => {
      await pauseConsumer(context.db, args.name);
      return findConsumer(context.db, args.name);
    },
  }),
  resumeConsumer: t.field({
    type: ConsumerRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description: 'Resumes a paused consumer from its checkpoints.',
    args: { name: t.arg.string({ required: true }) },
    errors: {
      types: [ERROR_TYPES.NotFoundError],
      union: { name: 'ResumeConsumerResult' },
      result: { name: 'ResumeConsumerSuccess' },
      dataField: { name: 'consumer' },
    },
    resolve: async (_root, args, context) => {
      await resumeConsumer(context.db, args.name);
      return findConsumer(context.db, args.name);
    },
  }),
  replayConsumer: t.field({
    type: ConsumerRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description:
      'Rewinds every partition of a consumer to just after a position (default: the start of the log) and ' +
      're-delivers from there, in order. Waits for in-flight batches.',
    args: { input: t.arg({ type: ReplayConsumerInput, required: true }) },
    errors: {
      types: [ERROR_TYPES.NotFoundError, ERROR_TYPES.ValidationError],
      union: { name: 'ReplayConsumerResult' },
      result: { name: 'ReplayConsumerSuccess' },
      dataField: { name: 'consumer' },
    },
    resolve: async (_root, args, context) => {
      const afterPosition = args.input.afterPosition ?? undefined;
      if (afterPosition !== undefined && !/^\d{1,18}$/.test(afterPosition))
        throw new ValidationError('afterPosition must be a log position', 'input.afterPosition');
      await replayConsumer(context.db, args.input.name, afterPosition === undefined ? {} : { afterPosition });
      return findConsumer(context.db, args.input.name);
    },
  }),
  redriveDeadLetters: t.field({
    type: 'Int',
    authScopes: SCOPES_TO_ADMINISTER,
    description:
      "Delivers a consumer's open dead letters again, in stream order: those listed in `ids`, or all of " +
      'them. Returns how many were queued.',
    args: {
      consumer: t.arg.string({ required: true }),
      ids: t.arg.idList({ required: false, description: 'At most 1000; default: every open one.' }),
    },
    errors: {
      types: [ERROR_TYPES.NotFoundError, ERROR_TYPES.ValidationError],
      union: { name: 'RedriveDeadLettersResult' },
      result: { name: 'RedriveDeadLettersSuccess' },
      dataField: { name: 'queued' },
    },
    resolve: async (_root, args, context) => {
      await findConsumer(context.db, args.consumer);
      const ids = args.ids?.map(String);
      if (ids && (ids.length > 1000 || ids.some((id) => !/^\d{1,18}$/.test(id))))
        throw new ValidationError('ids must be at most 1000 dead letter ids', 'ids');
      return redriveDeadLetters(context.db, args.consumer, ids ? { ids } : {});
    },
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
