import type { Command } from 'commander';
import { createApiKey, listApiKeys, revokeApiKey } from '../auth/api-keys.ts';
import { SCOPES } from '../auth/principal.ts';
import { SERVICE_LINES } from '../db/migration-lines.ts';
import { migrate } from '../engine/index.ts';
import { type CommandContext, withCommandDatabase } from './command-database.ts';
import { renderTable } from './table.ts';

/** Runs `work` against the configured database (migrated first, so keys can be made before `serve`). */
function withDatabase(work: (database: CommandContext['database']) => Promise<void>): Promise<void> {
  return withCommandDatabase(async ({ database, logger }) => {
    await migrate({ pool: database.pool, lines: SERVICE_LINES, logger });
    await work(database);
  });
}

/** `postbox keys create|list|revoke`. */
export function registerKeysCommand(program: Command): void {
  const keys = program.command('keys').description('manage API keys (stored hashed; a key is shown once)');
  keys
    .command('create')
    .description(`create an API key; scopes: ${SCOPES.join(', ')}`)
    .requiredOption('--scopes <scopes>', 'comma-separated scopes, e.g. orders:write,events:read')
    .option('--name <name>', 'what the key is for', 'unnamed')
    .option('--key <key>', 'install this key (pbx_…) instead of generating one; idempotent (for deployments)')
    .action(async (options: { scopes: string; name: string; key?: string }) => {
      await withDatabase(async ({ db }) => {
        const scopes = options.scopes
          .split(',')
          .map((scope) => scope.trim())
          .filter(Boolean);
        const created = await createApiKey(db, {
          name: options.name,
          scopes,
          ...(options.key ? { key: options.key } : {}),
        });
        if (options.key) {
          process.stderr.write(`key ${created.id} (${created.scopes.join(', ')}) installed\n`);
          return;
        }
        process.stdout.write(`${created.key}\n`);
        process.stderr.write(
          `key ${created.id} (${created.scopes.join(', ')}) created. Store it now: it cannot be shown again.\n` +
            'Use it as: Authorization: Bearer <key>\n',
        );
      });
    });
  keys
    .command('list')
    .description('list API keys (without secrets)')
    .action(async () => {
      await withDatabase(async ({ db }) => {
        const keyRows = await listApiKeys(db);
        process.stdout.write(
          renderTable(
            [{ name: 'id' }, { name: 'key' }, { name: 'name' }, { name: 'scopes' }, { name: 'state' }],
            keyRows.map((key) => [
              key.id,
              `pbx_${key.prefix}_…`,
              key.name,
              key.scopes.join(','),
              key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : 'active',
            ]),
          ),
        );
      });
    });
  keys
    .command('revoke <idOrPrefix>')
    .description('revoke an API key (by id or prefix)')
    .action(async (idOrPrefix: string) => {
      await withDatabase(async ({ db }) => {
        await revokeApiKey(db, idOrPrefix);
        process.stdout.write(`revoked ${idOrPrefix}\n`);
      });
    });
}
