import type { Command } from 'commander';
import { loadConfig } from '../config/config.ts';
import { runService } from '../main.ts';

/** `postbox serve`: the whole service (or one role of it) until SIGINT/SIGTERM. */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('migrate, then run the relay, the consumers and the API until Ctrl-C / SIGTERM')
    .option('--no-api', 'do not serve the GraphQL API in this process')
    .option('--no-workers', 'do not run the relay and consumers in this process')
    .action(async (options: { api: boolean; workers: boolean }) => {
      const config = loadConfig();
      await runService({
        ...config,
        runApi: config.runApi && options.api,
        runWorkers: config.runWorkers && options.workers,
      });
    });
}
