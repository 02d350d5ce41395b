import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { asyncApiDocument, eventContracts, listDestinations } from '../engine/index.ts';
import { SHOP_EVENTS } from '../shop/shop.events.ts';
import { withCommandDatabase } from './command-database.ts';

/**
 * `postbox contracts [--out dir]`: the event contracts of this service — `asyncapi.json` (AsyncAPI 3.0 of
 * the destinations in the database) and `schemas/<type>/<version>.json` (JSON Schema per event type).
 * Without `--out`, prints the AsyncAPI document.
 */
export function registerContractsCommand(program: Command): void {
  program
    .command('contracts')
    .description('write the AsyncAPI document of the destinations and the JSON Schema of every event type')
    .option('--out <dir>', 'directory to write asyncapi.json and schemas/<type>/<version>.json into')
    .option(
      '--subscription-endpoint <url>',
      'the GraphQL endpoint clients use (e.g. https://api.example.com/graphql): the document also describes its events subscription',
    )
    .action(async (options: { out?: string; subscriptionEndpoint?: string }) => {
      await withCommandDatabase(async ({ database }) => {
        const contracts = eventContracts(SHOP_EVENTS);
        const document = asyncApiDocument(
          contracts,
          await listDestinations(database.db),
          options.subscriptionEndpoint ? { subscriptionEndpoint: options.subscriptionEndpoint } : {},
        );
        if (!options.out) {
          process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
          return;
        }
        await mkdir(options.out, { recursive: true });
        await writeFile(path.join(options.out, 'asyncapi.json'), `${JSON.stringify(document, null, 2)}\n`);
        for (const contract of contracts) {
          const dir = path.join(options.out, 'schemas', contract.type);
          await mkdir(dir, { recursive: true });
          await writeFile(
            path.join(dir, `${contract.version}.json`),
            `${JSON.stringify(contract.jsonSchema, null, 2)}\n`,
          );
        }
        process.stdout.write(
          `wrote ${path.join(options.out, 'asyncapi.json')} and ${contracts.length} schemas under ${path.join(options.out, 'schemas')}\n`,
        );
      });
    });
}
