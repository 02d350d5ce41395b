import type { Kysely } from 'kysely';
import { CompiledQuery, sql } from 'kysely';
import { engineView } from '../db/database.ts';
import { DEFAULTS } from '../defaults.ts';
import { ConfigError } from '../errors.ts';
import { READABLE_HORIZON } from '../outbox/horizon.ts';
import { storeLiveDefinitions, touchDefinitions } from '../sql/consumer-definitions.ts';
import type { ConsumerDefinition } from './consumer.ts';

/**
 * Registers the consumers in `outbox.consumers` and creates their partitions. A consumer seen for the
 * first time starts at the beginning of the log, or — with `startFrom: 'now'` — after everything committed
 * so far (its checkpoint is the current gap-safe horizon; an event committed just before, while an older
 * transaction was open, is still delivered, so none committed later can be skipped).
 *
 * Definitions are versioned (`outbox.consumer_definitions`): a consumer's stored event and stream types
 * become the union of its live definitions — this one and those other running processes still refresh
 * within `leaseMs` — never simply this process's, so that old and new code can overlap in a rolling deploy
 * (each delivers only what it handles; see `Batch`).
 *
 * The partition count of an existing consumer cannot change here: streams would move to other partitions
 * while events are in flight, breaking per-stream order. That is refused with a {@link ConfigError}.
 */
export async function registerConsumers<DB>(
  database: Kysely<DB>,
  consumers: readonly ConsumerDefinition[],
  leaseMs: number = DEFAULTS.definitionLeaseMs,
): Promise<void> {
  const db = engineView(database);
  const names = new Set<string>();
  for (const consumer of consumers) {
    if (names.has(consumer.name)) throw new ConfigError(`Two consumers are named ${consumer.name}`);
    names.add(consumer.name);
  }
  await db.transaction().execute(async (trx) => {
    for (const consumer of consumers) {
      const { rows } = await sql<{ partitions: number }>`
        insert into outbox.consumers as c (name, event_types, stream_types, partitions, on_exhausted)
        values (${consumer.name}, ${[...consumer.eventTypes]}::text[],
                ${consumer.streamTypes ? [...consumer.streamTypes] : null}::text[], ${consumer.partitions},
                ${consumer.onExhausted})
        on conflict (name) do update set on_exhausted = excluded.on_exhausted, updated_at = now()
          where c.kind = 'handler'
        returning c.partitions`.execute(trx);
      if (rows.length === 0) {
        throw new ConfigError(
          `Consumer ${consumer.name}: a destination of that name exists; rename one of them`,
        );
      }
      const stored = rows[0]?.partitions;
      if (stored !== consumer.partitions) {
        throw new ConfigError(
          `Consumer ${consumer.name} has ${stored} partitions in the database but ${consumer.partitions} in code. ` +
            'Changing it would reorder streams in flight; keep the stored count, or create a consumer under a new name.',
        );
      }
      const start = consumer.startFrom === 'now' ? sql.raw(READABLE_HORIZON) : sql`${'0'}::xid8`;
      await sql`
        insert into outbox.consumer_partitions (consumer, partition, checkpoint_xid, checkpoint_position)
        select ${consumer.name}, p, ${start}, 0 from generate_series(0, ${consumer.partitions - 1}) p
        on conflict do nothing`.execute(trx);
    }
    const run = (text: string, values: unknown[]) => trx.executeQuery(CompiledQuery.raw(text, values));
    await touchDefinitions(run, consumers);
    await storeLiveDefinitions(
      run,
      leaseMs,
      consumers.map((consumer) => consumer.name),
    );
  });
}
