import { Command } from 'commander';
import { POSTBOX_VERSION } from '../config/version.ts';
import { registerBenchCommand } from './bench.command.ts';
import { registerConsumersCommand } from './consumers.command.ts';
import { registerContractsCommand } from './contracts.command.ts';
import { registerDemoCommand } from './demo.command.ts';
import { registerDestinationsCommand } from './destinations.command.ts';
import { registerKeysCommand } from './keys.command.ts';
import { registerLogCommand } from './log.command.ts';
import { registerMigrateCommand } from './migrate.command.ts';
import { registerServeCommand } from './serve.command.ts';
import { registerSqlCommand } from './sql.command.ts';

/**
 * `postbox <command>`. Each command lives in its own `*.command.ts` and registers itself here, so later
 * features plug in without touching the others.
 */
export function buildCli(): Command {
  const program = new Command('postbox')
    .description('Postgres-centric transactional outbox: event log, relay, consumers and GraphQL API')
    .version(POSTBOX_VERSION, '-V, --version', 'print the version')
    .showHelpAfterError()
    .exitOverride((error) => {
      // commander exits itself on --help/--version (code 0) and usage errors (code 1); keep those codes.
      process.exit(error.exitCode);
    });
  registerServeCommand(program);
  registerMigrateCommand(program);
  registerDemoCommand(program);
  registerBenchCommand(program);
  registerKeysCommand(program);
  registerConsumersCommand(program);
  registerDestinationsCommand(program);
  registerContractsCommand(program);
  registerLogCommand(program);
  registerSqlCommand(program);
  return program;
}

await buildCli()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    const err = error as Error & { code?: string };
    process.stderr.write(`postbox: ${err.message}\n`);
    process.exitCode = err.code === 'CONFIG_INVALID' ? 78 : 1; // 78 = EX_CONFIG
  });
