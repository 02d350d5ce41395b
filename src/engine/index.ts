/**
 * Postbox, the engine: declare events and consumers, append in your own transactions (Kysely, `pg` or
 * plain SQL), start delivery, read the log. Everything an application needs is exported here; nothing
 * else of the package is public API.
 * @module
 */

export {
  type ConsumerSummary,
  type DeadLetter,
  listConsumers,
  listDeadLetters,
  pauseConsumer,
  previewReplay,
  type RedriveOptions,
  type ReplayOptions,
  type ReplayPreview,
  type ReplayResult,
  redriveDeadLetters,
  replayConsumer,
  resumeConsumer,
} from './consumers/admin.ts';
export {
  type BatchItem,
  type ConsumerDefinition,
  type ConsumerOptions,
  defineConsumer,
  type HandlerContext,
  type HandlerTransaction,
  type RetryPolicy,
} from './consumers/consumer.ts';
export type { DeliveryOutcome } from './consumers/drain.ts';
export { DeliveryDeferred } from './consumers/failures.ts';
export {
  type DeadLetterDetail,
  type DeadLetterSearch,
  listPartitions,
  listStuckStreams,
  type PartitionState,
  type StuckStream,
  searchDeadLetters,
} from './consumers/inspect.ts';
export {
  type AsyncApiOptions,
  asyncApiDocument,
  type EventContract,
  eventContracts,
} from './contracts/event-contracts.ts';
export { createDb, type OutboxDatabase } from './db/database.ts';
export {
  type DatabaseTarget,
  ENGINE_MIGRATIONS,
  type LegacyMigration,
  type MigrateOptions,
  type MigrationLine,
  type MigrationStatus,
  type MigrationStatusOptions,
  migrate,
  migrationStatus,
} from './db/migrate.ts';
export { createPool, type PoolOptions } from './db/pool.ts';
export { DEFAULTS } from './defaults.ts';
export { type AddressPolicy, checkDestinationUrl } from './destinations/address-guard.ts';
export {
  type CreatedDestination,
  createDestination,
  type DestinationAdminOptions,
  type DestinationAttemptView,
  type DestinationPatch,
  type DestinationTestResult,
  type DestinationView,
  deleteDestination,
  getDestination,
  listDestinationAttempts,
  listDestinations,
  pauseDestination,
  type ReplayDestinationOptions,
  type RotateSecretOptions,
  registerDestinations,
  replayDestination,
  resumeDestination,
  rotateDestinationSecret,
  testDestination,
  updateDestination,
} from './destinations/admin.ts';
export { CLOUD_EVENT_SOURCE } from './destinations/cloud-event.ts';
export type { DestinationAttempt } from './destinations/deliver.ts';
export {
  type BreakerPolicy,
  DESTINATION_KINDS,
  type DestinationDefinition,
  type DestinationFilter,
  type DestinationInput,
  type DestinationKind,
  defineDestination,
  generateSigningSecret,
} from './destinations/destination.ts';
export * from './errors.ts';
export { type Logger, silentLogger } from './logger.ts';
export {
  type AppendedEvent,
  type AppendOptions,
  type AppendResult,
  type AppendTarget,
  appendEvents,
  type PgTransactionClient,
  type TransactionLike,
} from './outbox/append.ts';
export {
  type DefineEventOptions,
  defineEvent,
  type EventDefinition,
  type EventMetadata,
  MAX_PAYLOAD_BYTES,
  type NewEvent,
  type NewEventOptions,
  type PayloadOf,
  type RecordedEvent,
  type RecordedEventOf,
  type Upcaster,
} from './outbox/event.ts';
export { READABLE_HORIZON } from './outbox/horizon.ts';
export type { EventsTable, OutboxTables } from './outbox/outbox.tables.ts';
export {
  comparePoints,
  createEventRegistry,
  decodeCursor,
  type EventRegistry,
  type EventRow,
  encodeCursor,
  LOG_START,
  type LogFilter,
  type LogPage,
  type LogPoint,
  pointOf,
  type ReadLogOptions,
  readLogAfter,
  readLogHead,
  readStream,
  readStreams,
  toRecordedEvent,
} from './outbox/read.ts';
export { WAKE_CHANNEL } from './outbox/wake-channel.ts';
export { type Postbox, type PostboxConnection, type PostboxOptions, startPostbox } from './postbox.ts';
export type { PostboxEventMap, PostboxEvents, RelayActivity } from './postbox-events.ts';
export { Notifier, type NotifierOptions, type WakeListener } from './relay/notifier.ts';
export { type HorizonHolder, readHorizonHolders } from './sql/read-horizon-holders.ts';
export { type LogRebase, rebaseLog } from './sql/rebase-log.ts';
