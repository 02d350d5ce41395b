// The app of ../app.mjs with types: the package's declarations used with the app's own Kysely `Database`,
// without casts. Type-checked with both tsconfig.json (nodenext) and tsconfig.bundler.json (bundler);
// Node ≥ 22.18 also runs it as is (`node src/app.ts`).
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type ColumnType, type Generated, Kysely, PostgresDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import {
  type AppendedEvent,
  appendEvents,
  defineConsumer,
  defineEvent,
  type HandlerContext,
  type MigrationLine,
  migrate,
  type Postbox,
  type RecordedEventOf,
  readStream,
  startPostbox,
  ValidationError,
} from 'postbox';
import { z } from 'zod';

/** The app's tables, keyed `schema.table` as Kysely expects. */
export interface Database {
  'app.accounts': AccountsTable;
  'app.deposits': DepositsTable;
  'app.activity': ActivityTable;
  'app.statements': StatementsTable;
}

interface AccountsTable {
  id: string;
  owner: string;
  // int8 comes back from pg as a string; the app writes numbers.
  balance_cents: ColumnType<string, number | undefined, number>;
  created_at: Generated<Date>;
}

interface DepositsTable {
  id: string;
  account_id: string;
  amount_cents: ColumnType<string, number, number>;
  created_at: Generated<Date>;
}

interface ActivityTable {
  event_id: string;
  account_id: string;
  kind: string;
  amount_cents: ColumnType<string | null, number | null, number | null>;
  stream_version: number;
  handled_at: Generated<Date>;
}

interface StatementsTable {
  account_id: string;
  events_handled: number;
  net_cents: ColumnType<string, number, number>;
}

export const AccountOpened = defineEvent({
  type: 'AccountOpened',
  streamType: 'account',
  schema: z.object({ accountId: z.uuid(), owner: z.string().min(1).max(100) }),
});
export const MoneyDeposited = defineEvent({
  type: 'MoneyDeposited',
  streamType: 'account',
  schema: z.object({ accountId: z.uuid(), depositId: z.uuid(), amountCents: z.number().int().positive() }),
});
export const MoneyWithdrawn = defineEvent({
  type: 'MoneyWithdrawn',
  streamType: 'account',
  schema: z.object({ accountId: z.uuid(), amountCents: z.number().int().positive() }),
});

/** Every event of an account stream, as a consumer of all three receives it. */
export type AccountEvent = RecordedEventOf<
  typeof AccountOpened | typeof MoneyDeposited | typeof MoneyWithdrawn
>;

/** The signed amount an event moves. */
export function netCents(event: AccountEvent): number {
  switch (event.type) {
    case 'AccountOpened':
      return 0;
    case 'MoneyDeposited':
      return event.payload.amountCents;
    case 'MoneyWithdrawn':
      return -event.payload.amountCents;
  }
}

// Runs inside the delivery transaction: these writes and the consumer's checkpoint commit together.
export const activity = defineConsumer({
  name: 'activity',
  on: [AccountOpened, MoneyDeposited, MoneyWithdrawn],
  async handle(event, trx: Transaction<Database>, context: HandlerContext) {
    const amount = netCents(event);
    await trx
      .insertInto('app.activity')
      .values({
        event_id: event.id,
        account_id: event.payload.accountId,
        kind: event.type,
        amount_cents: amount,
        stream_version: event.streamVersion,
      })
      .execute();
    await trx
      .insertInto('app.statements')
      .values({ account_id: event.payload.accountId, events_handled: 1, net_cents: amount })
      .onConflict((oc) =>
        oc.column('account_id').doUpdateSet({
          events_handled: sql<number>`app.statements.events_handled + 1`,
          net_cents: sql<number>`app.statements.net_cents + excluded.net_cents`,
        }),
      )
      .execute();
    if (context.attempt > 1) context.logger.info({ eventId: event.id }, 'handled on a retry');
  },
});

/** The app's migration line, applied after the engine's. */
export const APP_MIGRATIONS: MigrationLine = {
  name: 'app',
  dir: fileURLToPath(new URL('../migrations/', import.meta.url)),
};

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

interface Reply {
  readonly status: number;
  readonly body: unknown;
}

const OpenAccountBody = z.object({ owner: z.string() });
const AmountBody = z.object({ amountCents: z.number() });

/** The HTTP handlers over one pool and the app's Kysely instance. */
export function createRoutes(pool: pg.Pool, db: Kysely<Database>) {
  async function openAccount(body: unknown): Promise<Reply> {
    const { owner } = parseBody(OpenAccountBody, body);
    const accountId = randomUUID();
    const event = AccountOpened.create(accountId, { accountId, owner });
    const result = await db.transaction().execute(async (trx) => {
      await trx.insertInto('app.accounts').values({ id: accountId, owner }).execute();
      return appendEvents(trx, [event]);
    });
    return { status: 201, body: { accountId, event: result.events[0] } };
  }

  async function deposit(accountId: string, body: unknown): Promise<Reply> {
    const { amountCents } = parseBody(AmountBody, body);
    const depositId = randomUUID();
    const event = MoneyDeposited.create(accountId, { accountId, depositId, amountCents });
    const client = await pool.connect();
    try {
      await client.query('begin');
      const updated = await client.query<{ balance_cents: string }>(
        'update app.accounts set balance_cents = balance_cents + $2 where id = $1 returning balance_cents',
        [accountId, amountCents],
      );
      const row = updated.rows[0];
      if (!row) throw new HttpError(404, `no account ${accountId}`);
      await client.query('insert into app.deposits (id, account_id, amount_cents) values ($1, $2, $3)', [
        depositId,
        accountId,
        amountCents,
      ]);
      const result = await appendEvents(client, [event]);
      await client.query('commit');
      return { status: 201, body: { balanceCents: Number(row.balance_cents), event: result.events[0] } };
    } catch (error) {
      await client.query('rollback');
      throw error;
    } finally {
      client.release();
    }
  }

  async function withdraw(accountId: string, body: unknown): Promise<Reply> {
    const { amountCents } = parseBody(AmountBody, body);
    const event = MoneyWithdrawn.create(accountId, { accountId, amountCents });
    try {
      return await db.transaction().execute(async (trx) => {
        // Order inside a transaction does not matter: if the balance check below fails, the event goes too.
        const result = await appendEvents(trx, [event]);
        const appended: AppendedEvent | undefined = result.events[0];
        const account = await trx
          .updateTable('app.accounts')
          .set({ balance_cents: sql<number>`balance_cents - ${amountCents}` })
          .where('id', '=', accountId)
          .returning('balance_cents')
          .executeTakeFirst();
        if (!account) throw new HttpError(404, `no account ${accountId}`);
        return { status: 201, body: { balanceCents: Number(account.balance_cents), event: appended } };
      });
    } catch (error) {
      if (error instanceof pg.DatabaseError && error.code === '23514') {
        throw new HttpError(409, 'insufficient funds');
      }
      throw error;
    }
  }

  async function showAccount(accountId: string): Promise<Reply> {
    const account = await db
      .selectFrom('app.accounts')
      .selectAll()
      .where('id', '=', accountId)
      .executeTakeFirst();
    if (!account) throw new HttpError(404, `no account ${accountId}`);
    const statement = await db
      .selectFrom('app.statements')
      .selectAll()
      .where('account_id', '=', accountId)
      .executeTakeFirst();
    const events = await readStream(db, 'account', accountId);
    return {
      status: 200,
      body: {
        account: { ...account, balance_cents: Number(account.balance_cents) },
        statement: statement ?? null,
        events: events.map((row) => ({ type: row.type, version: row.stream_version, payload: row.payload })),
      },
    };
  }

  const accountPath = /^\/accounts\/([0-9a-f-]{36})(\/deposits|\/withdrawals)?$/;

  return async function route(request: http.IncomingMessage): Promise<Reply> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (request.method === 'POST' && url.pathname === '/accounts')
      return openAccount(await readJson(request));
    const match = accountPath.exec(url.pathname);
    const accountId = match?.[1];
    if (accountId) {
      const action = match[2];
      if (request.method === 'GET' && !action) return showAccount(accountId);
      if (request.method === 'POST' && action === '/deposits')
        return deposit(accountId, await readJson(request));
      if (request.method === 'POST' && action === '/withdrawals') {
        return withdraw(accountId, await readJson(request));
      }
    }
    throw new HttpError(404, 'not found');
  };
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (!result.success) throw new HttpError(400, `bad request body: ${result.error.issues[0]?.message ?? ''}`);
  return result.data;
}

async function readJson(request: http.IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of request) text += String(chunk);
  try {
    const body: unknown = text ? JSON.parse(text) : {};
    return body;
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
}

function toReply(error: unknown): Reply {
  if (error instanceof HttpError) return { status: error.status, body: { error: error.message } };
  // Thrown by AccountOpened.create(…) and friends, before anything was written.
  if (error instanceof ValidationError)
    return { status: 400, body: { error: error.message, field: error.field } };
  log('request-failed', { message: error instanceof Error ? error.message : String(error) });
  return { status: 500, body: { error: 'internal error' } };
}

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

/** Migrates, starts delivery and the HTTP server, and stops all three in order on SIGTERM/SIGINT. */
export async function main(databaseUrl: string, port: number): Promise<void> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 20 });
  pool.on('error', (error) => log('pool-error', { message: error.message }));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  log('migrated', { applied: await migrate({ pool, lines: [APP_MIGRATIONS] }) });
  const postbox: Postbox = await startPostbox({ pool, consumers: [activity] });

  const route = createRoutes(pool, db);
  const server = http.createServer((request, response) => {
    route(request)
      .catch(toReply)
      .then(({ status, body }) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body));
      });
  });
  server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    log('listening', { port: typeof address === 'object' && address ? address.port : undefined });
  });

  let shuttingDown = false;
  const shutdown = async (signal: NodeJS.Signals): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    log('stopping', { signal });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await postbox.stop();
    const { rows } = await pool.query<{ answer: number }>('select 1 as answer');
    log('stopped', { poolAnswers: rows[0]?.answer === 1 });
    await pool.end();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    shutdown(signal).catch((error: unknown) => {
      log('stop-failed', { message: error instanceof Error ? error.message : String(error) });
      process.exitCode = 1;
    });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is required');
  await main(databaseUrl, Number(process.env.PORT ?? 3000));
}
