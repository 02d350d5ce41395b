import { setNodePostgresTypeParser } from '@event-driven-io/dumbo';
import type { Event } from '@event-driven-io/emmett';
import {
  getPostgreSQLEventStore,
  type PostgreSQLEventStoreConsumer,
  postgreSQLEventStoreConsumer,
} from '@event-driven-io/emmett-postgresql';
import pg from 'pg';
import { eventPayload, installedVersion, type PeerEvent, type PeerSystem } from './system.ts';

type OrderPlacedEvent = Event<'OrderPlaced', Record<string, unknown>>;

/**
 * The consumer's pulling: Emmett's defaults are batches of 100 and a 50 ms pause after every batch (its
 * puller sleeps between batches even when more are waiting, and backs off up to 1 s while idle). Larger
 * batches and a 10 ms pause drain several times faster here, so the bench runs it with these.
 */
const PULLING = { batchSize: 500, pullingFrequencyInMs: 10 };

/** pg type ids whose parsers Emmett's dumbo replaces process-wide: int8, jsonb, json. */
const PARSED_TYPES = [20, 3802, 114] as const;

const toEmmettEvent = (event: PeerEvent): OrderPlacedEvent => ({
  type: 'OrderPlaced',
  data: eventPayload(event),
});

/**
 * Emmett's PostgreSQL event store and consumer.
 *
 * - Append: `appendToStream` of an event store made on the app's client (`connectionOptions: { client }`).
 *   Emmett always wraps an append in its own `BEGIN … COMMIT` on the connection it is given (dumbo's
 *   `withTransaction`); on a client already in the app's transaction Postgres answers that BEGIN with a
 *   warning and Emmett's COMMIT commits the app's transaction — business row and event together — so the
 *   append has to be the transaction's last statement and the app's own COMMIT is then a no-op (warning).
 *   (Checked: after that append, the app's ROLLBACK no longer undoes the business row or the event.)
 * - Consumer: `postgreSQLEventStoreConsumer` with one reactor (`startFrom: 'BEGINNING'`); each pulled batch
 *   is handled in one transaction on Emmett's pool, the checkpoint (`emt_processors`) stored in it.
 *
 * Emmett's dumbo sets process-wide `pg` type parsers (int8 → BigInt, json → its parser) the first time it
 * makes a pool; the engine code of the other systems expects `pg`'s defaults, so this module installs
 * Emmett's parsers while its instance lives and puts the previous ones back at teardown.
 */
export const emmettPeer: PeerSystem = {
  key: 'emmett',
  label: 'Emmett',
  version: `@event-driven-io/emmett-postgresql ${installedVersion('@event-driven-io/emmett-postgresql')}`,
  ordered: true,
  settings: {
    append:
      'getPostgreSQLEventStore(url, { connectionOptions: { client } }).appendToStream (inside the app tx, last statement)',
    consumer: { reactor: 'eachMessage', startFrom: 'BEGINNING', pulling: PULLING },
    schema: 'eventStore.schema.migrate() at setup; autoMigration None on the hot path',
  },
  async setup(database) {
    const saved = PARSED_TYPES.map((oid) => [oid, pg.types.getTypeParser(oid)] as const);
    setNodePostgresTypeParser({ force: true });
    const restoreParsers = () => {
      for (const [oid, parser] of saved) pg.types.setTypeParser(oid, parser as (value: string) => unknown);
    };
    const store = getPostgreSQLEventStore(database.url, { schema: { autoMigration: 'None' } });
    try {
      await store.schema.migrate();
    } catch (error) {
      await store.close().catch(() => undefined);
      restoreParsers();
      throw error;
    }
    let consumer: PostgreSQLEventStoreConsumer<OrderPlacedEvent> | undefined;
    let running: Promise<void> | undefined;
    const stop = async () => {
      const current = consumer;
      consumer = undefined;
      if (!current) return;
      await current.stop();
      await running;
      await current.close();
    };
    return {
      async appendInTransaction(client, event) {
        const onClient = getPostgreSQLEventStore(database.url, {
          connectionOptions: { client },
          schema: { autoMigration: 'None' },
        });
        await onClient.appendToStream(`order-${event.streamId}`, [toEmmettEvent(event)]);
      },
      async fill(events) {
        // One appendToStream per stream (all its events at once), 4 at a time: Emmett's own batch append.
        const byStream = new Map<string, PeerEvent[]>();
        for (const event of events)
          byStream.set(event.streamId, [...(byStream.get(event.streamId) ?? []), event]);
        const groups = [...byStream.entries()];
        const worker = async () => {
          for (let entry = groups.pop(); entry; entry = groups.pop()) {
            await store.appendToStream(`order-${entry[0]}`, entry[1].map(toEmmettEvent));
          }
        };
        await Promise.all(Array.from({ length: 4 }, worker));
      },
      async startConsumer(recorder) {
        consumer = postgreSQLEventStoreConsumer<OrderPlacedEvent>({
          connectionString: database.url,
          pulling: PULLING,
        });
        consumer.reactor<OrderPlacedEvent>({
          processorId: 'bench-peer',
          startFrom: 'BEGINNING',
          async eachMessage(message, context) {
            const data = message.data as { eventId: string; streamId: string };
            const effect = recorder.start({
              eventId: data.eventId,
              streamId: data.streamId,
              version: Number(message.metadata.streamPosition),
            });
            await context.connection.client.query(effect.text, effect.values);
          },
        });
        running = consumer.start();
        // Errors surface through stop(); an unobserved rejection would be reported by the bench anyway.
        running.catch(() => undefined);
      },
      stopConsumer: stop,
      async teardown() {
        await stop();
        await store.close().catch(() => undefined);
        restoreParsers();
      },
    };
  },
};
