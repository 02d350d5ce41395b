/**
 * The advisory locks the engine takes, in one place so that no two parts pick the same key by accident and
 * every part that takes a lock takes the same one.
 */

/** Session lock held while migrating ("pbox" in ASCII): concurrent `migrate()` calls serialise on it. */
export const MIGRATION_LOCK_KEY = 0x70626f78;

/** Session lock held by the one relay leader of a database ("pbrx"). */
export const LEADER_LOCK_KEY = 0x70627278;

/**
 * SQL arguments of the transaction lock that gives one drainer a consumer partition at a time:
 * `pg_advisory_xact_lock(${partitionLockArgs(name, partition)})`. Both values are inlined as literals —
 * the consumer name is checked by `defineConsumer` (lower-case letters, digits, `-`, `_`) and the
 * partition is an integer — so the lock can ride in a multi-statement simple-protocol round trip.
 */
export function partitionLockArgs(consumer: string, partition: number): string {
  return `hashtext('postbox:${checkedConsumerName(consumer)}'), ${checkedPartition(consumer, partition)}`;
}

/**
 * What a consumer's (and so a destination's) name may be — lower-case letters, digits, `-`, `_`, at most 63
 * — as `outbox.consumers` checks it too. Its home is here because the engine inlines names in statements.
 */
export const CONSUMER_NAME = /^[a-z][a-z0-9_-]{0,62}$/;

/**
 * A consumer name fit to inline in a statement's text between single quotes (a simple-protocol round trip
 * carries no parameters): what `defineConsumer` accepts — lower-case letters, digits, `-`, `_`.
 */
export function checkedConsumerName(consumer: string): string {
  if (!CONSUMER_NAME.test(consumer)) throw new TypeError(`invalid consumer name ${consumer}`);
  return consumer;
}

function checkedPartition(consumer: string, partition: number): number {
  if (!Number.isInteger(partition))
    throw new TypeError(`invalid consumer partition ${consumer}/${partition}`);
  return partition;
}
