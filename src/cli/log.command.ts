import type { Command } from 'commander';
import { rebaseLog } from '../engine/index.ts';
import { withCommandDatabase } from './command-database.ts';

/** `postbox log …`: maintenance of the event log itself. */
export function registerLogCommand(program: Command): void {
  const log = program.command('log').description('maintain the event log');
  log
    .command('rebase')
    .description(
      "after a pg_dump/restore or a logical-replication cut-over: re-base the log's transaction ids and the " +
        "consumers' checkpoints below the cluster's counter, so delivery resumes with nothing skipped or repeated " +
        '(stop every Postbox process first; does nothing when the log is not ahead)',
    )
    .option('--lock-timeout <ms>', "how long to wait for the log's tables", '5000')
    .action(async (options: { lockTimeout: string }) => {
      const lockTimeoutMs = Number(options.lockTimeout);
      if (!Number.isInteger(lockTimeoutMs) || lockTimeoutMs <= 0) {
        throw new Error(`--lock-timeout must be a positive integer (ms), not ${options.lockTimeout}`);
      }
      await withCommandDatabase(async ({ database }) => {
        const client = await database.pool.connect();
        try {
          const result = await rebaseLog(client, { lockTimeoutMs });
          process.stdout.write(
            result.rebased
              ? `rebased: the log's transaction ids (up to ${result.aheadXid}) were ahead of the cluster's next ` +
                  `(${result.nextXid}); ${result.events} events now use ${result.segments} ids, ` +
                  `${result.checkpoints} checkpoints moved with them` +
                  (result.consumedXids > 0 ? `, ${result.consumedXids} transaction ids consumed first` : '') +
                  '. Postbox can start.\n'
              : `nothing to do: the log's transaction ids (up to ${result.aheadXid}) are below the cluster's next ` +
                  `(${result.nextXid}).\n`,
          );
        } finally {
          client.release();
        }
      });
    });
}
