import {
  type CreatedDestination,
  createDestination,
  type DestinationAttemptView,
  type DestinationInput,
  type DestinationPatch,
  type DestinationTestResult,
  type DestinationView,
  deleteDestination,
  getDestination,
  listDestinationAttempts,
  listDestinations,
  NotFoundError,
  pauseDestination,
  replayDestination,
  resumeDestination,
  rotateDestinationSecret,
  testDestination,
  updateDestination,
} from '../../engine/index.ts';
import { builder } from '../builder.ts';
import { ERROR_TYPES } from './errors.ts';
import { SCOPES_TO_ADMINISTER } from './scopes.ts';

const DestinationKindEnum = builder.enumType('DestinationKind', {
  description: 'Where a destination delivers.',
  values: {
    WEBHOOK: { value: 'webhook' as const, description: 'Signed HTTP POSTs (Standard Webhooks).' },
    NATS: {
      value: 'nats' as const,
      description: 'JetStream publishes (Nats-Msg-Id = the event id); the checkpoint moves after the PubAck.',
    },
    RABBITMQ: {
      value: 'rabbitmq' as const,
      description:
        'Persistent messages to a topic exchange on a confirm channel; the checkpoint moves after the confirm.',
    },
    KAFKA: {
      value: 'kafka' as const,
      description:
        'Records keyed by stream id from an idempotent producer with acks=all; the checkpoint moves after the ack.',
    },
  },
});

const DestinationStateEnum = builder.enumType('DestinationState', {
  values: {
    ACTIVE: { value: 'active' as const, description: 'Delivering.' },
    PAUSED: { value: 'paused' as const, description: 'Paused by an operator; events wait.' },
    DISABLED: {
      value: 'disabled' as const,
      description: 'The receiver answered 410 Gone; events wait until resumed.',
    },
  },
});

const CircuitStateEnum = builder.enumType('CircuitState', {
  values: {
    CLOSED: { value: 'closed' as const, description: 'Requests flow.' },
    OPEN: { value: 'open' as const, description: 'No requests until the cool-down ends; events wait.' },
    HALF_OPEN: { value: 'half_open' as const, description: 'One probe request is in flight.' },
  },
});

const StartFromEnum = builder.enumType('DestinationStartFrom', {
  values: {
    NOW: { value: 'now' as const, description: 'Events appended from now on.' },
    BEGINNING: { value: 'beginning' as const, description: 'The whole log.' },
  },
});

const OnExhaustedEnum = builder.enumType('DestinationOnExhausted', {
  values: {
    DEAD_LETTER: { value: 'dead_letter' as const, description: 'Record a dead letter; the stream goes on.' },
    BLOCK: { value: 'block' as const, description: 'The stream waits for an operator.' },
  },
});

type CircuitView = DestinationView['circuit'];
const CircuitRef = builder.objectRef<CircuitView>('DestinationCircuit').implement({
  description: "A destination's circuit breaker, shared by every worker process.",
  fields: (t) => ({
    state: t.field({ type: CircuitStateEnum, resolve: (circuit) => circuit.state }),
    since: t.field({ type: 'DateTime', resolve: (circuit) => circuit.since }),
    consecutiveFailures: t.exposeInt('consecutiveFailures'),
    openUntil: t.field({ type: 'DateTime', nullable: true, resolve: (circuit) => circuit.openUntil }),
    lastError: t.exposeString('lastError', { nullable: true }),
    lastFailureAt: t.field({ type: 'DateTime', nullable: true, resolve: (circuit) => circuit.lastFailureAt }),
  }),
});

const FilterRef = builder.objectRef<DestinationView['filter']>('DestinationFilter').implement({
  fields: (t) => ({
    types: t.stringList({ resolve: (filter) => [...filter.types] }),
    streamTypes: t.stringList({
      nullable: true,
      resolve: (filter) => (filter.streamTypes ? [...filter.streamTypes] : null),
    }),
  }),
});

const RetryRef = builder.objectRef<DestinationView['retry']>('DestinationRetryPolicy').implement({
  fields: (t) => ({
    maxAttempts: t.exposeInt('maxAttempts'),
    initialDelayMs: t.exposeInt('initialDelayMs'),
    maxDelayMs: t.exposeInt('maxDelayMs'),
    jitter: t.exposeFloat('jitter'),
  }),
});

const AttemptRef = builder.objectRef<DestinationAttemptView>('DestinationAttempt').implement({
  description: 'One delivery attempt (the log keeps the last few hundred per destination).',
  fields: (t) => ({
    at: t.field({ type: 'DateTime', resolve: (attempt) => attempt.at }),
    eventId: t.exposeString('eventId'),
    attempt: t.exposeInt('attempt'),
    outcome: t.exposeString('outcome', { description: '`delivered`, `failed`, `deferred` or `ping`.' }),
    status: t.exposeInt('status', { nullable: true, description: 'HTTP status; null when none came.' }),
    durationMs: t.exposeInt('durationMs'),
    error: t.exposeString('error', { nullable: true }),
    responseSnippet: t.exposeString('responseSnippet', { nullable: true }),
  }),
});

const DestinationRef = builder.objectRef<DestinationView>('Destination').implement({
  description:
    'An outside system that receives the log with per-stream order, retries and dead letters. Its secrets ' +
    '(signing secret, custom header values) are never returned.',
  fields: (t) => ({
    name: t.exposeString('name'),
    kind: t.field({ type: DestinationKindEnum, resolve: (d) => d.kind }),
    url: t.exposeString('url', { description: 'A broker URL is shown without its user and password.' }),
    subject: t.exposeString('subject', { nullable: true, description: 'NATS: the subject template.' }),
    createStream: t.exposeBoolean('createStream', {
      nullable: true,
      description: 'NATS: whether a missing JetStream stream is created.',
    }),
    exchange: t.exposeString('exchange', { nullable: true, description: 'RabbitMQ: the topic exchange.' }),
    routingKey: t.exposeString('routingKey', {
      nullable: true,
      description: 'RabbitMQ: the routing key template.',
    }),
    topic: t.exposeString('topic', { nullable: true, description: 'Kafka: the topic template.' }),
    state: t.field({ type: DestinationStateEnum, resolve: (d) => d.state }),
    stateReason: t.exposeString('stateReason', { nullable: true }),
    filter: t.field({ type: FilterRef, resolve: (d) => d.filter }),
    retry: t.field({ type: RetryRef, resolve: (d) => d.retry }),
    onExhausted: t.field({ type: OnExhaustedEnum, resolve: (d) => d.onExhausted }),
    maxInFlight: t.exposeInt('maxInFlight'),
    timeoutMs: t.exposeInt('timeoutMs'),
    headerNames: t.stringList({ resolve: (d) => [...d.headerNames] }),
    previousSecretExpiresAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'After a rotation, the previous secret still signs until then.',
      resolve: (d) => d.previousSecretExpiresAt,
    }),
    circuit: t.field({ type: CircuitRef, resolve: (d) => d.circuit }),
    lag: t.exposeInt('lag', { description: 'Events not yet delivered.' }),
    retrying: t.exposeInt('retrying', { description: 'Streams waiting for a retry.' }),
    blocked: t.exposeInt('blocked', { description: 'Streams parked until an operator acts.' }),
    deadLetters: t.exposeInt('deadLetters'),
    delivered: t.exposeInt('delivered'),
    lastError: t.exposeString('lastError', { nullable: true }),
    createdAt: t.field({ type: 'DateTime', resolve: (d) => d.createdAt }),
    attempts: t.field({
      type: [AttemptRef],
      description: 'Recent delivery attempts, newest first.',
      args: { limit: t.arg.int({ required: false, defaultValue: 20 }) },
      resolve: (d, args, context) => listDestinationAttempts(context.db, d.name, args.limit ?? 20),
    }),
  }),
});

const FilterInput = builder.inputType('DestinationFilterInput', {
  fields: (t) => ({
    types: t.stringList({ required: true, description: 'Event types (at least one).' }),
    streamTypes: t.stringList({ required: false, description: 'Only these stream types; omitted: all.' }),
  }),
});

const RetryInput = builder.inputType('DestinationRetryInput', {
  fields: (t) => ({
    maxAttempts: t.int({ required: false }),
    initialDelayMs: t.int({ required: false }),
    maxDelayMs: t.int({ required: false }),
    jitter: t.float({ required: false }),
  }),
});

const BreakerInput = builder.inputType('DestinationBreakerInput', {
  fields: (t) => ({
    failureThreshold: t.int({
      required: false,
      description: 'Consecutive failures that open it. Default 5.',
    }),
    coolDownMs: t.int({ required: false, description: 'How long it stays open. Default 30000.' }),
  }),
});

const HeaderInput = builder.inputType('DestinationHeaderInput', {
  fields: (t) => ({ name: t.string({ required: true }), value: t.string({ required: true }) }),
});

/** The broker kinds' target settings, the same on create and on update. */
function brokerFields(
  t: PothosSchemaTypes.InputFieldBuilder<
    typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never,
    'InputObject'
  >,
) {
  return {
    subject: t.string({
      required: false,
      description:
        'NATS: subject template over {streamType}, {streamId}, {type}. Default postbox.{streamType}.{type}.',
    }),
    createStream: t.boolean({
      required: false,
      description:
        'NATS: create the JetStream stream (postbox_<name>) when none captures the subjects. Default false.',
    }),
    exchange: t.string({
      required: false,
      description: 'RabbitMQ: durable topic exchange. Default postbox.',
    }),
    routingKey: t.string({
      required: false,
      description:
        'RabbitMQ: routing key template over {streamType}, {streamId}, {type}. Default {streamType}.{type}.',
    }),
    topic: t.string({
      required: false,
      description:
        'Kafka: topic template over {streamType}, {streamId}, {type}. Default postbox.{streamType} (a stream stays in one topic). Topics are not created.',
    }),
  };
}

const CreateInput = builder.inputType('CreateDestinationInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    kind: t.field({ type: DestinationKindEnum, required: true }),
    url: t.string({
      required: true,
      description:
        'http(s) URL (webhook), nats://[user:pass@]host:port, amqp[s]://user:pass@host:port/vhost, or the Kafka bootstrap brokers: host:port[,host:port] or kafka[s]://[user:pass@]host:port[,…][?sasl=plain|scram-sha-256|scram-sha-512].',
    }),
    ...brokerFields(t),
    filter: t.field({ type: FilterInput, required: true }),
    startFrom: t.field({ type: StartFromEnum, required: false, description: 'Default NOW.' }),
    retry: t.field({ type: RetryInput, required: false }),
    onExhausted: t.field({ type: OnExhaustedEnum, required: false, description: 'Default DEAD_LETTER.' }),
    maxInFlight: t.int({
      required: false,
      description: 'Requests in flight at most; fixed at creation. Default 8.',
    }),
    timeoutMs: t.int({ required: false, description: 'Per request. Default 10000.' }),
    headers: t.field({
      type: [HeaderInput],
      required: false,
      description: 'Sent with every request; never returned.',
    }),
    breaker: t.field({ type: BreakerInput, required: false }),
  }),
});

const UpdateInput = builder.inputType('UpdateDestinationInput', {
  fields: (t) => ({
    url: t.string({ required: false }),
    ...brokerFields(t),
    filter: t.field({ type: FilterInput, required: false }),
    retry: t.field({ type: RetryInput, required: false }),
    onExhausted: t.field({ type: OnExhaustedEnum, required: false }),
    timeoutMs: t.int({ required: false }),
    headers: t.field({ type: [HeaderInput], required: false, description: 'Replaces every custom header.' }),
    breaker: t.field({ type: BreakerInput, required: false }),
  }),
});

const CreatedRef = builder.objectRef<CreatedDestination>('CreateDestinationSuccess').implement({
  description: 'The new destination and its signing secret — shown this once; store it in the receiver.',
  isTypeOf: (value) =>
    typeof value === 'object' && value !== null && 'secret' in value && 'destination' in value,
  fields: (t) => ({
    destination: t.field({ type: DestinationRef, resolve: (created) => created.destination }),
    secret: t.exposeString('secret', { description: 'The `whsec_…` signing secret.' }),
  }),
});

const RotatedRef = builder
  .objectRef<{ destination: DestinationView; secret: string }>('RotateDestinationSecretSuccess')
  .implement({
    description:
      'The new signing secret (shown this once); the previous one signs too until the overlap ends.',
    isTypeOf: (value) =>
      typeof value === 'object' && value !== null && 'secret' in value && 'destination' in value,
    fields: (t) => ({
      destination: t.field({ type: DestinationRef, resolve: (rotated) => rotated.destination }),
      secret: t.exposeString('secret'),
    }),
  });

const TestResultRef = builder.objectRef<DestinationTestResult>('TestDestinationSuccess').implement({
  description: 'What the receiver answered to one signed ping (`type: postbox.ping`).',
  isTypeOf: (value) => typeof value === 'object' && value !== null && 'ok' in value && 'durationMs' in value,
  fields: (t) => ({
    ok: t.exposeBoolean('ok'),
    status: t.exposeInt('status', { nullable: true }),
    durationMs: t.float({ resolve: (result) => result.durationMs }),
    error: t.exposeString('error', { nullable: true }),
  }),
});

const DeletedRef = builder.objectRef<{ name: string }>('DeleteDestinationSuccess').implement({
  isTypeOf: (value) => typeof value === 'object' && value !== null && 'name' in value && !('kind' in value),
  fields: (t) => ({ name: t.exposeString('name') }),
});

type Optional<T> = T | null | undefined;
const brokerFieldsOf = (input: {
  subject?: Optional<string>;
  createStream?: Optional<boolean>;
  exchange?: Optional<string>;
  routingKey?: Optional<string>;
  topic?: Optional<string>;
}) => ({
  ...(typeof input.subject === 'string' ? { subject: input.subject } : {}),
  ...(typeof input.createStream === 'boolean' ? { createStream: input.createStream } : {}),
  ...(typeof input.exchange === 'string' ? { exchange: input.exchange } : {}),
  ...(typeof input.routingKey === 'string' ? { routingKey: input.routingKey } : {}),
  ...(typeof input.topic === 'string' ? { topic: input.topic } : {}),
});
const defined = <T>(value: Optional<T>): T | undefined => (value === null ? undefined : value);
const headersOf = (headers: Optional<ReadonlyArray<{ name: string; value: string }>>) =>
  headers ? Object.fromEntries(headers.map((header) => [header.name, header.value])) : undefined;
const retryOf = (retry: Optional<Record<string, number | null | undefined>>) =>
  retry
    ? Object.fromEntries(Object.entries(retry).filter(([, value]) => value !== null && value !== undefined))
    : undefined;
const filterOf = (filter: Optional<{ types: string[]; streamTypes?: string[] | null | undefined }>) =>
  filter
    ? { types: filter.types, ...(filter.streamTypes ? { streamTypes: filter.streamTypes } : {}) }
    : undefined;

const errorTypes = [ERROR_TYPES.ValidationError, ERROR_TYPES.NotFoundError];

builder.queryFields((t) => ({
  destinations: t.field({
    type: [DestinationRef],
    authScopes: SCOPES_TO_ADMINISTER,
    description: 'Every destination: state, circuit, lag and dead letters.',
    resolve: (_root, _args, context) => listDestinations(context.db),
  }),
  destination: t.field({
    type: DestinationRef,
    nullable: true,
    authScopes: SCOPES_TO_ADMINISTER,
    args: { name: t.arg.string({ required: true }) },
    resolve: async (_root, args, context) => {
      try {
        return await getDestination(context.db, args.name);
      } catch (error) {
        if (error instanceof NotFoundError) return null;
        throw error;
      }
    },
  }),
}));

builder.mutationFields((t) => ({
  createDestination: t.field({
    type: CreatedRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description:
      'Creates a destination; running workers start delivering within their poll interval (at once on NOTIFY). ' +
      'The success returns its signing secret, this once.',
    args: { input: t.arg({ type: CreateInput, required: true }) },
    errors: {
      types: [ERROR_TYPES.ValidationError, ERROR_TYPES.ConflictError],
      union: { name: 'CreateDestinationResult' },
      directResult: true,
    },
    resolve: (_root, { input }, context) => {
      const headers = headersOf(input.headers);
      const retry = retryOf(input.retry);
      const breaker = retryOf(input.breaker);
      const candidate: DestinationInput = {
        name: input.name,
        kind: input.kind,
        url: input.url,
        filter: filterOf(input.filter) ?? { types: [] },
        ...brokerFieldsOf(input),
        ...(input.startFrom ? { startFrom: input.startFrom } : {}),
        ...(retry ? { retry } : {}),
        ...(input.onExhausted ? { onExhausted: input.onExhausted } : {}),
        ...(defined(input.maxInFlight) !== undefined ? { maxInFlight: input.maxInFlight as number } : {}),
        ...(defined(input.timeoutMs) !== undefined ? { timeoutMs: input.timeoutMs as number } : {}),
        ...(headers ? { headers } : {}),
        ...(breaker ? { breaker } : {}),
      };
      return createDestination(context.db, candidate, { addressPolicy: context.destinationAddressPolicy });
    },
  }),
  updateDestination: t.field({
    type: DestinationRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description: "Changes a destination's URL, filter, retry policy, timeout, headers or breaker.",
    args: { name: t.arg.string({ required: true }), input: t.arg({ type: UpdateInput, required: true }) },
    errors: {
      types: errorTypes,
      union: { name: 'UpdateDestinationResult' },
      result: { name: 'UpdateDestinationSuccess' },
      dataField: { name: 'destination' },
    },
    resolve: (_root, { name, input }, context) => {
      const headers = headersOf(input.headers);
      const retry = retryOf(input.retry);
      const breaker = retryOf(input.breaker);
      const filter = filterOf(input.filter);
      const patch: DestinationPatch = {
        ...(input.url ? { url: input.url } : {}),
        ...(filter ? { filter } : {}),
        ...brokerFieldsOf(input),
        ...(retry ? { retry } : {}),
        ...(input.onExhausted ? { onExhausted: input.onExhausted } : {}),
        ...(defined(input.timeoutMs) !== undefined ? { timeoutMs: input.timeoutMs as number } : {}),
        ...(headers ? { headers } : {}),
        ...(breaker ? { breaker } : {}),
      };
      return updateDestination(context.db, name, patch, { addressPolicy: context.destinationAddressPolicy });
    },
  }),
  pauseDestination: t.field({
    type: DestinationRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description: 'Stops delivery (in-flight requests finish); events wait.',
    args: { name: t.arg.string({ required: true }) },
    errors: {
      types: errorTypes,
      union: { name: 'PauseDestinationResult' },
      result: { name: 'PauseDestinationSuccess' },
      dataField: { name: 'destination' },
    },
    resolve: (_root, args, context) => pauseDestination(context.db, args.name),
  }),
  resumeDestination: t.field({
    type: DestinationRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description: 'Resumes a paused or disabled destination where it stopped; its circuit starts closed.',
    args: { name: t.arg.string({ required: true }) },
    errors: {
      types: errorTypes,
      union: { name: 'ResumeDestinationResult' },
      result: { name: 'ResumeDestinationSuccess' },
      dataField: { name: 'destination' },
    },
    resolve: (_root, args, context) => resumeDestination(context.db, args.name),
  }),
  deleteDestination: t.field({
    type: DeletedRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description:
      'Deletes a destination with its checkpoints, retries, dead letters, circuit, secrets and attempt log.',
    args: { name: t.arg.string({ required: true }) },
    errors: { types: errorTypes, union: { name: 'DeleteDestinationResult' }, directResult: true },
    resolve: async (_root, args, context) => {
      await deleteDestination(context.db, args.name);
      return { name: args.name };
    },
  }),
  replayDestination: t.field({
    type: DestinationRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description:
      'Sends the events after a log position (or all) again, in stream order, with their original webhook-ids.',
    args: {
      name: t.arg.string({ required: true }),
      afterPosition: t.arg.string({
        required: false,
        description: 'A log position; omitted: the beginning.',
      }),
    },
    errors: {
      types: errorTypes,
      union: { name: 'ReplayDestinationResult' },
      result: { name: 'ReplayDestinationSuccess' },
      dataField: { name: 'destination' },
    },
    resolve: (_root, args, context) =>
      replayDestination(
        context.db,
        args.name,
        args.afterPosition ? { afterPosition: args.afterPosition } : {},
      ),
  }),
  rotateDestinationSecret: t.field({
    type: RotatedRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description:
      'Generates a new signing secret (returned this once). The previous one keeps signing for `overlapSeconds` ' +
      '(default 86400): both signatures are sent meanwhile.',
    args: {
      name: t.arg.string({ required: true }),
      overlapSeconds: t.arg.int({ required: false }),
    },
    errors: { types: errorTypes, union: { name: 'RotateDestinationSecretResult' }, directResult: true },
    resolve: (_root, args, context) =>
      rotateDestinationSecret(
        context.db,
        args.name,
        args.overlapSeconds !== null && args.overlapSeconds !== undefined
          ? { overlapMs: args.overlapSeconds * 1000 }
          : {},
      ),
  }),
  testDestination: t.field({
    type: TestResultRef,
    authScopes: SCOPES_TO_ADMINISTER,
    description:
      'Sends one signed ping now and reports the answer (the circuit and checkpoints are untouched).',
    args: { name: t.arg.string({ required: true }) },
    errors: { types: errorTypes, union: { name: 'TestDestinationResult' }, directResult: true },
    resolve: (_root, args, context) =>
      testDestination(context.db, args.name, { addressPolicy: context.destinationAddressPolicy }),
  }),
}));
