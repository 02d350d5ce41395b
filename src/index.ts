/**
 * Postbox's programmatic API: declare events and consumers, append in your transactions, start the engine.
 * @module
 */

export {
  listConsumers,
  listDeadLetters,
  pauseConsumer,
  redriveDeadLetters,
  replayConsumer,
  resumeConsumer,
} from './consumers/admin.ts';
export {
  type ConsumerDefinition,
  defineConsumer,
  type HandlerContext,
  type RetryPolicy,
} from './consumers/consumer.ts';
export { migrate, migrationStatus } from './db/migrate.ts';
export * from './errors.ts';
export { type AppendOptions, type AppendResult, appendEvents } from './outbox/append.ts';
export {
  defineEvent,
  type EventDefinition,
  type EventMetadata,
  type NewEvent,
  type RecordedEvent,
  type RecordedEventOf,
} from './outbox/event.ts';
export { decodeCursor, encodeCursor, type LogPoint, readLogAfter, readStream } from './outbox/read.ts';
export { type Postbox, type PostboxOptions, startPostbox } from './postbox.ts';
