// A small bank-account HTTP service on Postbox, in plain JavaScript (ESM): it runs on any Node ≥ 22 from the
// installed package, without type stripping. src/app.ts is the same app with types.
//
//   DATABASE_URL=postgres://… PORT=3000 node app.mjs
//
//   POST /accounts                  {"owner":"Ada"}       Kysely transaction: account row + AccountOpened
//   POST /accounts/:id/deposits     {"amountCents":500}   pg client, BEGIN/COMMIT: balance, deposit row + MoneyDeposited
//   POST /accounts/:id/withdrawals  {"amountCents":200}   Kysely transaction: MoneyWithdrawn + balance; an overdraft
//                                                         fails the balance check and rolls back both (409)
//   GET  /accounts/:id                                    the account, its statement and its event stream
//
// The `activity` consumer writes app.activity and app.statements in its delivery transaction: once per event.
// One JSON line per lifecycle step on stdout: migrated, listening {port}, stopping, stopped {poolAnswers}.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import {
  appendEvents,
  defineConsumer,
  defineEvent,
  migrate,
  readStream,
  startPostbox,
  ValidationError,
} from 'postbox';
import { z } from 'zod';

const AccountOpened = defineEvent({
  type: 'AccountOpened',
  streamType: 'account',
  schema: z.object({ accountId: z.uuid(), owner: z.string().min(1).max(100) }),
});
const MoneyDeposited = defineEvent({
  type: 'MoneyDeposited',
  streamType: 'account',
  schema: z.object({ accountId: z.uuid(), depositId: z.uuid(), amountCents: z.number().int().positive() }),
});
const MoneyWithdrawn = defineEvent({
  type: 'MoneyWithdrawn',
  streamType: 'account',
  schema: z.object({ accountId: z.uuid(), amountCents: z.number().int().positive() }),
});

/** The signed amount an event moves. */
function netCents(event) {
  switch (event.type) {
    case 'MoneyDeposited':
      return event.payload.amountCents;
    case 'MoneyWithdrawn':
      return -event.payload.amountCents;
    default:
      return 0;
  }
}

// Runs inside the delivery transaction: these writes and the consumer's checkpoint commit together.
const activity = defineConsumer({
  name: 'activity',
  on: [AccountOpened, MoneyDeposited, MoneyWithdrawn],
  async handle(event, trx, context) {
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
          events_handled: sql`app.statements.events_handled + 1`,
          net_cents: sql`app.statements.net_cents + excluded.net_cents`,
        }),
      )
      .execute();
    if (context.attempt > 1) context.logger.info({ eventId: event.id }, 'handled on a retry');
  },
});

/** The app's migration line, applied after the engine's. */
const APP_MIGRATIONS = { name: 'app', dir: fileURLToPath(new URL('./migrations/', import.meta.url)) };

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const OpenAccountBody = z.object({ owner: z.string() });
const AmountBody = z.object({ amountCents: z.number() });

/** The HTTP handlers over one pool and the app's Kysely instance. */
function createRoutes(pool, db) {
  async function openAccount(body) {
    const { owner } = parseBody(OpenAccountBody, body);
    const accountId = randomUUID();
    const event = AccountOpened.create(accountId, { accountId, owner });
    const result = await db.transaction().execute(async (trx) => {
      await trx.insertInto('app.accounts').values({ id: accountId, owner }).execute();
      return appendEvents(trx, [event]);
    });
    return { status: 201, body: { accountId, event: result.events[0] } };
  }

  async function deposit(accountId, body) {
    const { amountCents } = parseBody(AmountBody, body);
    const depositId = randomUUID();
    const event = MoneyDeposited.create(accountId, { accountId, depositId, amountCents });
    const client = await pool.connect();
    try {
      await client.query('begin');
      const updated = await client.query(
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

  async function withdraw(accountId, body) {
    const { amountCents } = parseBody(AmountBody, body);
    const event = MoneyWithdrawn.create(accountId, { accountId, amountCents });
    try {
      return await db.transaction().execute(async (trx) => {
        // Order inside a transaction does not matter: if the balance check below fails, the event goes too.
        const result = await appendEvents(trx, [event]);
        const account = await trx
          .updateTable('app.accounts')
          .set({ balance_cents: sql`balance_cents - ${amountCents}` })
          .where('id', '=', accountId)
          .returning('balance_cents')
          .executeTakeFirst();
        if (!account) throw new HttpError(404, `no account ${accountId}`);
        return {
          status: 201,
          body: { balanceCents: Number(account.balance_cents), event: result.events[0] },
        };
      });
    } catch (error) {
      if (error instanceof pg.DatabaseError && error.code === '23514') {
        throw new HttpError(409, 'insufficient funds');
      }
      throw error;
    }
  }

  async function showAccount(accountId) {
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

  return async function route(request) {
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

function parseBody(schema, body) {
  const result = schema.safeParse(body);
  if (!result.success) throw new HttpError(400, `bad request body: ${result.error.issues[0]?.message ?? ''}`);
  return result.data;
}

async function readJson(request) {
  let text = '';
  for await (const chunk of request) text += String(chunk);
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
}

function toReply(error) {
  if (error instanceof HttpError) return { status: error.status, body: { error: error.message } };
  // Thrown by AccountOpened.create(…) and friends, before anything was written.
  if (error instanceof ValidationError)
    return { status: 400, body: { error: error.message, field: error.field } };
  log('request-failed', { message: error instanceof Error ? error.message : String(error) });
  return { status: 500, body: { error: 'internal error' } };
}

function log(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

/** Migrates, starts delivery and the HTTP server, and stops all three in order on SIGTERM/SIGINT. */
async function main(databaseUrl, port) {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 20 });
  // Without a listener an idle client whose connection dies would crash the process.
  pool.on('error', (error) => log('pool-error', { message: error.message }));
  const db = new Kysely({ dialect: new PostgresDialect({ pool }) });
  // The engine's line (`outbox`, then graphile-worker's schema) first, then the app's own.
  log('migrated', { applied: await migrate({ pool, lines: [APP_MIGRATIONS] }) });
  const postbox = await startPostbox({ pool, consumers: [activity] });

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
  const shutdown = async (signal) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log('stopping', { signal });
    // 1. No new requests; in-flight ones finish. 2. Delivery stops once its running batches commit.
    await new Promise((resolve) => server.close(() => resolve()));
    await postbox.stop();
    // 3. The pool is still the app's after postbox.stop(): show it answers, then end it.
    const { rows } = await pool.query('select 1 as answer');
    log('stopped', { poolAnswers: rows[0]?.answer === 1 });
    await pool.end();
  };
  const onSignal = (signal) => {
    shutdown(signal).catch((error) => {
      log('stop-failed', { message: error instanceof Error ? error.message : String(error) });
      process.exitCode = 1;
    });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('DATABASE_URL is required');
await main(databaseUrl, Number(process.env.PORT ?? 3000));
