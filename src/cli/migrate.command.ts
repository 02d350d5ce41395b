import type { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { openDatabase } from '../db/connect.ts';
import { SERVICE_LINES } from '../db/migration-lines.ts';
import { migrate, migrationStatus } from '../engine/index.ts';
import { createLogger } from '../logger.ts';
import { renderTable } from './table.ts';

/** `postbox migrate [--status]`. */
export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description(
      "apply pending migrations (the engine's, graphile-worker's, the service's and the shop's), under an advisory lock",
    )
    .option('--status', 'list migrations and whether each is applied; change nothing')
    .action(async (options: { status?: boolean }) => {
      const config = loadConfig();
      const logger = createLogger(config);
      const database = await openDatabase(config, logger);
      try {
        if (options.status) {
          const rows = await migrationStatus({ pool: database.pool, lines: SERVICE_LINES });
          process.stdout.write(
            renderTable(
              [{ name: 'state' }, { name: 'migration' }, { name: 'applied_at' }],
              rows.map((row) => [row.state, `${row.line}/${row.name}`, row.appliedAt?.toISOString()]),
            ),
          );
          const pending = rows.filter((row) => row.state === 'pending').length;
          process.stdout.write(`${rows.length - pending} applied, ${pending} pending\n`);
        } else {
          const applied = await migrate({ pool: database.pool, lines: SERVICE_LINES, logger });
          process.stdout.write(
            applied.length ? `applied ${applied.length}: ${applied.join(', ')}\n` : 'up to date\n',
          );
        }
      } finally {
        await database.close();
      }
    });
}
