import type { Command } from 'commander';
import type { Db } from '../db/database.ts';
import {
  type AddressPolicy,
  createDestination,
  type DestinationInput,
  type DestinationPatch,
  type DestinationView,
  deleteDestination,
  getDestination,
  listDestinationAttempts,
  listDestinations,
  pauseDestination,
  replayDestination,
  resumeDestination,
  rotateDestinationSecret,
  testDestination,
  updateDestination,
} from '../engine/index.ts';
import { withCommandDatabase } from './command-database.ts';

function withDb(work: (db: Db, policy: AddressPolicy) => Promise<void>): Promise<void> {
  return withCommandDatabase(({ database, config }) => work(database.db, config.destinationAddressPolicy));
}

const list = (value: string): string[] =>
  value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);

function integer(value: string, name: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed)) throw new Error(`${name} must be a whole number (got ${value})`);
  return parsed;
}

/** `--header 'Authorization: Bearer …'` (repeatable) → a header record. */
function headers(values: readonly string[] | undefined): Record<string, string> | undefined {
  if (!values?.length) return undefined;
  return Object.fromEntries(
    values.map((value) => {
      const at = value.indexOf(':');
      if (at < 1) throw new Error(`--header must be "Name: value" (got ${value})`);
      return [value.slice(0, at).trim(), value.slice(at + 1).trim()];
    }),
  );
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function describe(destination: DestinationView): string {
  const circuit = destination.circuit;
  return [
    `${destination.name}  ${destination.kind}  ${destination.url}`,
    ...(destination.subject
      ? [`  subject ${destination.subject}${destination.createStream ? '  (creates its stream)' : ''}`]
      : []),
    ...(destination.exchange
      ? [`  exchange ${destination.exchange}  routing key ${destination.routingKey}`]
      : []),
    ...(destination.topic ? [`  topic ${destination.topic}`] : []),
    `  state ${destination.state}${destination.stateReason ? ` (${destination.stateReason})` : ''}`,
    `  circuit ${circuit.state} since ${circuit.since.toISOString()}, ${circuit.consecutiveFailures} consecutive failures` +
      (circuit.openUntil ? `, open until ${circuit.openUntil.toISOString()}` : ''),
    `  types ${destination.filter.types.join(',')}${destination.filter.streamTypes ? `  stream types ${destination.filter.streamTypes.join(',')}` : ''}`,
    `  lag ${destination.lag}  retrying ${destination.retrying}  blocked ${destination.blocked}  dead letters ${destination.deadLetters}  delivered ${destination.delivered}`,
    ...(destination.lastError ? [`  last error ${destination.lastError}`] : []),
  ].join('\n');
}

interface SettingOptions {
  url?: string;
  types?: string;
  streamTypes?: string;
  maxAttempts?: string;
  onExhausted?: string;
  timeoutMs?: string;
  header?: string[];
  failureThreshold?: string;
  coolDownMs?: string;
  subject?: string;
  createStream?: boolean;
  exchange?: string;
  routingKey?: string;
  topic?: string;
}

function addSettingOptions(command: Command): Command {
  return command
    .option('--types <A,B>', 'event types to deliver (comma-separated)')
    .option('--stream-types <a,b>', 'only events of these stream types')
    .option('--max-attempts <n>', 'attempts before an event is exhausted (default 8)')
    .option('--on-exhausted <policy>', 'dead_letter (default) or block')
    .option('--timeout-ms <ms>', 'per request (default 10000)')
    .option('--header <"Name: value">', 'a custom header (repeatable; never shown again)', collect)
    .option('--failure-threshold <n>', 'consecutive failures that open the circuit (default 5)')
    .option('--cool-down-ms <ms>', 'how long the circuit stays open (default 30000)')
    .option('--subject <template>', 'nats: subject template (default postbox.{streamType}.{type})')
    .option('--create-stream', 'nats: create the JetStream stream when none captures the subjects')
    .option('--exchange <name>', 'rabbitmq: durable topic exchange (default postbox)')
    .option('--routing-key <template>', 'rabbitmq: routing key template (default {streamType}.{type})')
    .option('--topic <template>', 'kafka: topic template (default postbox.{streamType})');
}

function settingsOf(options: SettingOptions): DestinationPatch {
  const header = headers(options.header);
  const breaker = {
    ...(options.failureThreshold
      ? { failureThreshold: integer(options.failureThreshold, '--failure-threshold') }
      : {}),
    ...(options.coolDownMs ? { coolDownMs: integer(options.coolDownMs, '--cool-down-ms') } : {}),
  };
  return {
    ...(options.url ? { url: options.url } : {}),
    ...(options.types
      ? {
          filter: {
            types: list(options.types),
            ...(options.streamTypes ? { streamTypes: list(options.streamTypes) } : {}),
          },
        }
      : {}),
    ...(options.maxAttempts
      ? { retry: { maxAttempts: integer(options.maxAttempts, '--max-attempts') } }
      : {}),
    ...(options.onExhausted ? { onExhausted: options.onExhausted as 'dead_letter' | 'block' } : {}),
    ...(options.timeoutMs ? { timeoutMs: integer(options.timeoutMs, '--timeout-ms') } : {}),
    ...(header ? { headers: header } : {}),
    ...(Object.keys(breaker).length ? { breaker } : {}),
    ...(options.subject ? { subject: options.subject } : {}),
    ...(options.createStream ? { createStream: true } : {}),
    ...(options.exchange ? { exchange: options.exchange } : {}),
    ...(options.routingKey ? { routingKey: options.routingKey } : {}),
    ...(options.topic ? { topic: options.topic } : {}),
  };
}

/** `postbox destinations …`: the GraphQL admin API's destination operations, from a shell. */
export function registerDestinationsCommand(program: Command): void {
  const destinations = program
    .command('destinations')
    .description('outside systems that receive the log (signed webhooks, NATS JetStream, RabbitMQ, Kafka)');
  destinations
    .command('list', { isDefault: true })
    .description('every destination: state, circuit, lag, dead letters, last error')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) =>
      withDb(async (db) => {
        const rows = await listDestinations(db);
        if (options.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        else process.stdout.write(rows.length ? `${rows.map(describe).join('\n')}\n` : 'no destinations\n');
      }),
    );
  destinations
    .command('show <name>')
    .description('one destination and its recent delivery attempts')
    .option('--attempts <n>', 'how many attempts', '10')
    .action((name: string, options: { attempts: string }) =>
      withDb(async (db) => {
        process.stdout.write(`${describe(await getDestination(db, name))}\n`);
        for (const attempt of await listDestinationAttempts(
          db,
          name,
          integer(options.attempts, '--attempts'),
        )) {
          process.stdout.write(
            `  ${attempt.at.toISOString()}  ${attempt.outcome}  ${attempt.status ?? '-'}  ${attempt.durationMs}ms  ${attempt.eventId}${attempt.error ? `  ${attempt.error}` : ''}\n`,
          );
        }
      }),
    );
  addSettingOptions(
    destinations
      .command('create <name>')
      .description('create a destination; prints its signing secret once (webhooks)')
      .requiredOption(
        '--url <url>',
        'http(s) URL, nats://[user:pass@]host:port, amqp://user:pass@host/vhost or kafka://[user:pass@]host:port[,host:port]',
      )
      .option('--kind <kind>', 'webhook, nats, rabbitmq or kafka', 'webhook')
      .option('--from <start>', 'now (default) or beginning', 'now')
      .option('--max-in-flight <n>', 'requests in flight at most, fixed at creation (default 8)'),
  ).action((name: string, options: SettingOptions & { kind: string; from: string; maxInFlight?: string }) =>
    withDb(async (db, addressPolicy) => {
      const settings = settingsOf(options);
      const input = {
        name,
        kind: options.kind,
        url: options.url,
        filter: settings.filter ?? { types: [] },
        startFrom: options.from,
        ...settings,
        ...(options.maxInFlight ? { maxInFlight: integer(options.maxInFlight, '--max-in-flight') } : {}),
      } as DestinationInput;
      const created = await createDestination(db, input, { addressPolicy });
      process.stdout.write(`${describe(created.destination)}\n`);
      if (created.destination.kind === 'webhook')
        process.stdout.write(`signing secret (shown once): ${created.secret}\n`);
    }),
  );
  addSettingOptions(
    destinations.command('update <name>').description('change settings').option('--url <url>', 'new URL'),
  ).action((name: string, options: SettingOptions) =>
    withDb(async (db, addressPolicy) => {
      process.stdout.write(
        `${describe(await updateDestination(db, name, settingsOf(options), { addressPolicy }))}\n`,
      );
    }),
  );
  destinations
    .command('pause <name>')
    .description('stop delivering (events wait)')
    .action((name: string) =>
      withDb(async (db) => {
        await pauseDestination(db, name);
        process.stdout.write(`${name} paused; \`postbox destinations resume ${name}\` resumes\n`);
      }),
    );
  destinations
    .command('resume <name>')
    .description('resume a paused or disabled destination (its circuit starts closed)')
    .action((name: string) =>
      withDb(async (db) => {
        await resumeDestination(db, name);
        process.stdout.write(`${name} resumed\n`);
      }),
    );
  destinations
    .command('delete <name>')
    .description('delete a destination and all its state')
    .action((name: string) =>
      withDb(async (db) => {
        await deleteDestination(db, name);
        process.stdout.write(`${name} deleted\n`);
      }),
    );
  destinations
    .command('replay <name>')
    .description('send the events again: all, or those after --after <position>')
    .option('--after <position>', 'log position to replay after')
    .action((name: string, options: { after?: string }) =>
      withDb(async (db) => {
        await replayDestination(db, name, options.after ? { afterPosition: options.after } : {});
        process.stdout.write(
          `${name} rewound${options.after ? ` to after position ${options.after}` : ' to the start'}\n`,
        );
      }),
    );
  destinations
    .command('rotate-secret <name>')
    .description('new signing secret (printed once); the previous one signs too during the overlap')
    .option('--overlap-seconds <s>', 'how long the previous secret stays valid', '86400')
    .action((name: string, options: { overlapSeconds: string }) =>
      withDb(async (db) => {
        const rotated = await rotateDestinationSecret(db, name, {
          overlapMs: integer(options.overlapSeconds, '--overlap-seconds') * 1000,
        });
        process.stdout.write(`new signing secret (shown once): ${rotated.secret}\n`);
      }),
    );
  destinations
    .command('test <name>')
    .description('send one signed ping and print the answer')
    .action((name: string) =>
      withDb(async (db, addressPolicy) => {
        const result = await testDestination(db, name, { addressPolicy });
        process.stdout.write(
          `${result.ok ? 'ok' : 'failed'}: ${result.status ?? 'no response'} in ${result.durationMs.toFixed(0)} ms${result.error ? ` (${result.error})` : ''}\n`,
        );
        if (!result.ok) process.exitCode = 1;
      }),
    );
}
