import type { Command } from 'commander';
import type { Db } from '../db/database.ts';
import {
  listConsumers,
  listDeadLetters,
  pauseConsumer,
  readHorizonHolders,
  redriveDeadLetters,
  replayConsumer,
  resumeConsumer,
} from '../engine/index.ts';
import { withCommandDatabase } from './command-database.ts';
import { renderTable } from './table.ts';

function withDb(work: (db: Db) => Promise<void>): Promise<void> {
  return withCommandDatabase(({ database }) => work(database.db));
}

/** An unknown consumer name is an error (non-zero exit) naming the known ones, not an empty answer. */
async function assertConsumerExists(db: Db, name: string): Promise<void> {
  const names = (await listConsumers(db)).map((consumer) => consumer.name);
  if (!names.includes(name)) {
    throw new Error(`No consumer named ${name} (consumers: ${names.join(', ') || 'none'})`);
  }
}

const seconds = (ms: number) => (ms === 0 ? '-' : `${(ms / 1000).toFixed(1)}s`);

/** `postbox consumers …` and `postbox dead-letters …`: operating the delivery side. */
export function registerConsumersCommand(program: Command): void {
  const consumers = program.command('consumers').description('inspect and operate consumers');
  consumers
    .command('list', { isDefault: true })
    .description(
      'status, lag, oldest undelivered event, retrying/blocked streams and dead letters per consumer',
    )
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withDb(async (db) => {
        const rows = await listConsumers(db);
        if (options.json) {
          process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
          return;
        }
        process.stdout.write(
          renderTable(
            [
              { name: 'consumer' },
              { name: 'status' },
              { name: 'partitions', numeric: true },
              { name: 'lag', numeric: true },
              { name: 'oldest' },
              { name: 'retrying', numeric: true },
              { name: 'blocked', numeric: true },
              { name: 'dead', numeric: true },
              { name: 'handled', numeric: true },
            ],
            rows.map((c) => [
              c.name,
              c.status,
              c.partitions,
              c.lag,
              seconds(c.oldestPendingMs),
              c.retrying,
              c.blocked,
              c.deadLetters,
              c.handled,
            ]),
          ),
        );
      });
    });
  consumers
    .command('pause <name>')
    .description('stop delivering to a consumer (events keep accumulating)')
    .action((name: string) =>
      withDb(async (db) => {
        await pauseConsumer(db, name);
        process.stdout.write(
          `${name} paused: events keep accumulating; \`postbox consumers resume ${name}\` resumes\n`,
        );
      }),
    );
  consumers
    .command('resume <name>')
    .description('resume a paused consumer from its checkpoints')
    .action((name: string) =>
      withDb(async (db) => {
        await resumeConsumer(db, name);
        process.stdout.write(`${name} resumed from its checkpoints\n`);
      }),
    );
  consumers
    .command('horizon')
    .description(
      'the oldest open write transactions: every consumer waits for the first one (pid, age, query)',
    )
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withDb(async (db) => {
        const rows = await readHorizonHolders(db);
        if (options.json) {
          process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
          return;
        }
        if (rows.length === 0) {
          process.stdout.write('no open write transaction: nothing holds the log back\n');
          return;
        }
        for (const row of rows) {
          const who = row.pid === null ? `prepared ${row.preparedGid}` : `pid ${row.pid}`;
          const query = (row.query ?? '(not visible to this role)').replace(/\s+/g, ' ').slice(0, 200);
          process.stdout.write(
            `${row.holdsHorizon ? '* ' : '  '}${who}  ${seconds(row.ageMs)}  ${row.state ?? ''}  ` +
              `${row.database ?? ''}/${row.user ?? ''}/${row.applicationName ?? ''}  ${query}\n`,
          );
        }
      });
    });
  consumers
    .command('replay <name>')
    .description('re-deliver events to a consumer: all of them, or those after --after <position>')
    .option('--after <position>', 'log position to replay after')
    .action((name: string, options: { after?: string }) =>
      withDb(async (db) => {
        const result = await replayConsumer(
          db,
          name,
          options.after === undefined ? {} : { afterPosition: options.after },
        );
        process.stdout.write(
          `${name} rewound${options.after ? ` to after position ${options.after}` : ' to the start'}; ` +
            `blocked streams kept: ${result.keptBlockedStreams} (failed before the point, still retried), ` +
            `released: ${result.releasedBlockedStreams} (replayed); open dead letters: ${result.openDeadLetters}\n`,
        );
      }),
    );

  const deadLetters = program.command('dead-letters').description('inspect and redrive dead letters');
  deadLetters
    .command('list [consumer]', { isDefault: true })
    .description('open dead letters with their last error')
    .action((consumer?: string) =>
      withDb(async (db) => {
        if (consumer !== undefined) await assertConsumerExists(db, consumer);
        const rows = await listDeadLetters(db, consumer);
        process.stdout.write(
          renderTable(
            [
              { name: 'id', numeric: true },
              { name: 'consumer' },
              { name: 'event_type' },
              { name: 'stream' },
              { name: 'version', numeric: true },
              { name: 'attempts', numeric: true },
              { name: 'dead_at' },
              { name: 'last_error' },
            ],
            rows.map((row) => [
              row.id,
              row.consumer,
              row.event_type,
              `${row.stream_type}/${row.stream_id}`,
              row.stream_version,
              row.attempts,
              row.dead_at.toISOString(),
              row.last_error,
            ]),
          ),
        );
      }),
    );
  deadLetters
    .command('redrive <consumer> [ids...]')
    .description(
      'deliver dead letters again, in stream order (all open ones of the consumer, or the given ids)',
    )
    .action((consumer: string, ids: string[]) =>
      withDb(async (db) => {
        await assertConsumerExists(db, consumer);
        const count = await redriveDeadLetters(db, consumer, ids.length ? { ids } : {});
        process.stdout.write(`${count} dead letter(s) queued for redrive\n`);
      }),
    );
}
