import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  appendEvents,
  defineConsumer,
  defineEvent,
  type Postbox,
  type RecordedEvent,
  startPostbox,
  ValidationError,
} from '../../src/engine/index.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/wait.ts';

// Appending from the outside: SQL producers call outbox.append_event(s) in their own transactions, next to
// (and interleaved with) TypeScript producers, and consumers cannot tell the difference.

const producerDir = fileURLToPath(new URL('../../examples/sql-producer/', import.meta.url));

/** psql on PATH, or undefined: CI installs postgresql-client; elsewhere the psql test is skipped, visibly. */
const psqlPath = await new Promise<string | undefined>((resolve) => {
  execFile('sh', ['-c', 'command -v psql'], (error, stdout) =>
    resolve(error ? undefined : stdout.trim() || undefined),
  );
});
if (!psqlPath) {
  console.warn(
    'sql-append: psql is not on PATH, so the examples/sql-producer test is SKIPPED (install postgresql-client)',
  );
}

const InvoiceIssued = defineEvent({
  type: 'InvoiceIssued',
  streamType: 'invoice',
  schema: z.object({ invoiceId: z.uuid(), customer: z.string(), amountCents: z.number().int().positive() }),
});
const Counted = defineEvent({
  type: 'Counted',
  streamType: 'counter',
  schema: z.object({ writer: z.string(), n: z.number().int() }),
});

/** Every event the consumers handled, in the order they handled them. */
const handled: RecordedEvent[] = [];
const invoices = defineConsumer({
  name: 'invoices',
  on: [InvoiceIssued],
  async handle(event) {
    handled.push(event);
  },
});
const counters = defineConsumer({
  name: 'counters',
  on: [Counted],
  partitions: 4,
  async handle(event) {
    handled.push(event);
  },
});

let t: TestDatabase;
let postbox: Postbox;
/** Connections of their own, as separate SQL producers would have. */
const clients: pg.Client[] = [];

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 20 });
  postbox = await startPostbox({ pool: t.pool, consumers: [invoices, counters], concurrency: 2 });
  for (let i = 0; i < 4; i++) {
    const client = new pg.Client({ connectionString: t.url, application_name: `sql-producer-${i}` });
    await client.connect();
    clients.push(client);
  }
});

afterAll(async () => {
  await postbox?.stop();
  await Promise.all(clients.map((client) => client.end()));
  await t?.drop();
});

const APPEND_ONE = `select * from outbox.append_event(stream_type => $1, stream_id => $2, type => $3, payload => $4::jsonb)`;

interface AppendRow {
  event_id: string;
  position: string;
  stream_version: number;
  log_xid: string;
  duplicate: boolean;
}

/** Runs `fn` between BEGIN and COMMIT on a client (ROLLBACK if it throws). */
async function inTransaction<T>(client: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  await client.query('begin');
  try {
    const result = await fn();
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback');
    throw error;
  }
}

/** The database error a statement raises inside a transaction (rolled back). Fails if it succeeds. */
async function refusal(
  client: pg.ClientBase,
  text: string,
  values: unknown[] = [],
): Promise<pg.DatabaseError> {
  const outcome = await inTransaction(client, () => client.query(text, values)).then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof pg.DatabaseError)) throw new Error(`expected a database error from: ${text}`);
  return outcome;
}

/** The stream's events (version, type, id) and its head row's version, as stored. */
async function stored(streamType: string, streamId: string) {
  const events = await t.pool.query<{ stream_version: number; type: string; id: string; payload: unknown }>(
    `select stream_version, type, id, payload from outbox.events
     where stream_type = $1 and stream_id = $2 order by stream_version`,
    [streamType, streamId],
  );
  const head = await t.pool.query<{ version: number }>(
    'select version from outbox.streams where stream_type = $1 and stream_id = $2',
    [streamType, streamId],
  );
  return { events: events.rows, version: head.rows[0]?.version };
}

/** Versions handled so far for one stream, in the order they were handled. */
const handledVersions = (streamType: string, streamId: string) =>
  handled
    .filter((event) => event.streamType === streamType && event.streamId === streamId)
    .map((e) => e.streamVersion);

interface Finished {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `psql -X -q -A -t -v ON_ERROR_STOP=1 -v k=v … -f <file> <url>`; resolves with its exit code. */
function psql(file: string, variables: Readonly<Record<string, string>> = {}): Promise<Finished> {
  const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1'];
  for (const [name, value] of Object.entries(variables)) args.push('-v', `${name}=${value}`);
  args.push('-f', path.join(producerDir, file), t.url);
  return new Promise((resolve, reject) => {
    if (!psqlPath) return reject(new Error('psql is not installed'));
    // Only what psql needs: no PG* variable of the machine changes its session.
    execFile(
      psqlPath,
      args,
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}

describe('appending from SQL', () => {
  it.skipIf(!psqlPath)(
    'examples/sql-producer: psql appends with the business row, idempotently, and a consumer receives it',
    async () => {
      expect(await psql('schema.sql')).toMatchObject({ code: 0, stderr: '' });
      const invoiceId = randomUUID();
      const eventId = randomUUID();
      const variables = { invoice_id: invoiceId, event_id: eventId, customer: 'ada', amount_cents: '1250' };

      const first = await psql('issue-invoice.sql', variables);
      expect(first).toMatchObject({ code: 0, stderr: '' });
      const [id, position, version, duplicate] = first.stdout.trim().split('|');
      expect({ id, version, duplicate }).toEqual({ id: eventId, version: '1', duplicate: 'f' });
      const log = await stored('invoice', invoiceId);
      expect(log).toEqual({
        events: [
          {
            stream_version: 1,
            type: 'InvoiceIssued',
            id: eventId,
            payload: { invoiceId, customer: 'ada', amountCents: 1250 },
          },
        ],
        version: 1,
      });
      const metadata = await t.pool.query<{ metadata: unknown }>(
        'select metadata from outbox.events where id = $1',
        [eventId],
      );
      expect(metadata.rows).toEqual([{ metadata: { actor: 'billing-psql' } }]);
      const rows = await t.pool.query(
        'select id, customer, amount_cents from billing.invoices where id = $1',
        [invoiceId],
      );
      expect(rows.rows).toEqual([{ id: invoiceId, customer: 'ada', amount_cents: 1250 }]);

      const delivered = await waitFor('the psql-appended invoice at the consumer', async () =>
        handled.find((event) => event.id === eventId),
      );
      expect(delivered).toMatchObject({
        type: 'InvoiceIssued',
        streamType: 'invoice',
        streamId: invoiceId,
        streamVersion: 1,
        position,
        payload: { invoiceId, customer: 'ada', amountCents: 1250 },
      });

      // A retry of the committed run: nothing new, the same event reported as a duplicate.
      const retry = await psql('issue-invoice.sql', variables);
      expect(retry).toMatchObject({ code: 0, stderr: '' });
      expect(retry.stdout.trim()).toBe(`${eventId}|${position}|1|t`);
      expect((await stored('invoice', invoiceId)).events).toHaveLength(1);

      // Another event for the same invoice: expected_version 0 refuses it, and the transaction rolls back.
      const conflict = await psql('issue-invoice.sql', { ...variables, event_id: randomUUID() });
      expect(conflict.code).toBe(3); // psql: an error with ON_ERROR_STOP
      expect(conflict.stderr).toContain(`stream invoice/${invoiceId} is at version 1, not the expected 0`);
      expect((await stored('invoice', invoiceId)).events.map((event) => event.id)).toEqual([eventId]);

      // A business rule failing (amount 0): neither the invoice nor its event.
      const refusedId = randomUUID();
      const refused = await psql('issue-invoice.sql', {
        ...variables,
        invoice_id: refusedId,
        event_id: randomUUID(),
        amount_cents: '0',
      });
      expect(refused.code).toBe(3);
      expect(refused.stderr).toContain('invoices_amount_cents_check');
      expect(await stored('invoice', refusedId)).toEqual({ events: [], version: undefined });

      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(handled.filter((event) => event.type === 'InvoiceIssued').map((event) => event.id)).toEqual([
        eventId,
      ]);
    },
  );

  it('gives contiguous versions to concurrent SQL and TypeScript appends on one stream', async () => {
    const stream = randomUUID();
    const rounds = 8;
    // What each writer was told: its writer name and the versions it got.
    const got: Array<{ writer: string; versions: number[] }> = [];
    const sqlWriter = async (client: pg.Client, index: number) => {
      const writer = `sql-${index}`;
      for (let n = 0; n < rounds; n++) {
        const rows = await inTransaction(client, async () => {
          // Every third round appends two events in one call (append_events), the others one.
          if (n % 3 === 2) {
            const payloads = [JSON.stringify({ writer, n }), JSON.stringify({ writer, n })];
            const result = await client.query<AppendRow>(
              `select * from outbox.append_events(stream_type => 'counter', stream_id => $1,
                 types => array['Counted', 'Counted'], payloads => $2::jsonb[])`,
              [stream, payloads],
            );
            return result.rows;
          }
          const result = await client.query<AppendRow>(APPEND_ONE, [
            'counter',
            stream,
            'Counted',
            JSON.stringify({ writer, n }),
          ]);
          return result.rows;
        });
        got.push({ writer, versions: rows.map((row) => row.stream_version) });
      }
    };
    const typescriptWriter = async (index: number) => {
      const writer = `ts-${index}`;
      for (let n = 0; n < rounds; n++) {
        const events = Array.from({ length: n % 3 === 1 ? 2 : 1 }, () =>
          Counted.create(stream, { writer, n }),
        );
        // Half the TypeScript writers append through Kysely, half through a pg client after BEGIN.
        const result =
          index % 2 === 0
            ? await t.db.transaction().execute((trx) => appendEvents(trx, events))
            : await (async () => {
                const client = await t.pool.connect();
                try {
                  return await inTransaction(client, () => appendEvents(client, events));
                } finally {
                  client.release();
                }
              })();
        got.push({ writer, versions: result.events.map((event) => event.streamVersion) });
      }
    };
    await Promise.all([
      ...clients.map((client, index) => sqlWriter(client, index)),
      ...Array.from({ length: 4 }, (_, index) => typescriptWriter(index)),
    ]);

    const total = got.reduce((sum, call) => sum + call.versions.length, 0);
    // 4 SQL writers: 8 rounds, 2 of them with two events; 4 TypeScript writers: 8 rounds, 3 with two.
    expect(total).toBe(4 * 10 + 4 * 11);
    const expected = Array.from({ length: total }, (_, i) => i + 1);
    const { events, version } = await stored('counter', stream);
    expect(events.map((event) => event.stream_version)).toEqual(expected);
    expect(new Set(events.map((event) => event.id)).size).toBe(total);
    expect(version).toBe(total);
    // Each caller was told exactly the versions the log holds for it, and one call's versions are adjacent.
    expect(got.flatMap((call) => call.versions).sort((a, b) => a - b)).toEqual(expected);
    for (const call of got) {
      expect(call.versions).toEqual(call.versions.map((_, i) => (call.versions[0] ?? 0) + i));
    }
    // Each writer's own appends are in its order in the stream, and SQL and TypeScript writers interleave.
    const parsed = events.map((event) => Counted.schema.parse(event.payload));
    for (const writer of new Set(parsed.map((payload) => payload.writer))) {
      const ns = parsed.filter((payload) => payload.writer === writer).map((payload) => payload.n);
      expect(ns).toEqual([...ns].sort((a, b) => a - b));
    }
    const kinds = parsed.map((payload) => payload.writer.split('-')[0]);
    const switches = kinds.filter((kind, i) => i > 0 && kind !== kinds[i - 1]).length;
    expect(switches).toBeGreaterThan(0);

    // And the consumer gets them all once, in version order.
    await waitFor(
      `${total} events of the stream handled`,
      async () => handledVersions('counter', stream).length >= total,
    );
    expect(handledVersions('counter', stream)).toEqual(expected);
  });

  it('refuses a stale expected_version with SQLSTATE PB409 and a JSON detail, writing nothing', async () => {
    const [client] = clients;
    if (!client) throw new Error('no client');
    const stream = randomUUID();
    for (let i = 0; i < 2; i++) {
      await inTransaction(client, () =>
        client.query(APPEND_ONE, ['counter', stream, 'Counted', '{"writer":"x","n":0}']),
      );
    }
    const stale = `select * from outbox.append_event(stream_type => 'counter', stream_id => $1, type => 'Counted',
      payload => '{"writer":"x","n":1}', expected_version => $2)`;
    for (const expectedVersion of [1, 0, 3]) {
      const error = await refusal(client, stale, [stream, expectedVersion]);
      expect(error.code).toBe('PB409');
      expect(JSON.parse(error.detail ?? 'null')).toEqual({
        stream_type: 'counter',
        stream_id: stream,
        expected_version: expectedVersion,
        actual_version: 2,
      });
    }
    expect(await stored('counter', stream)).toMatchObject({
      version: 2,
      events: [{ stream_version: 1 }, { stream_version: 2 }],
    });

    // On a stream that does not exist: actual_version 0, and no stream row is left behind.
    const missing = randomUUID();
    const error = await refusal(client, stale, [missing, 5]);
    expect(error.code).toBe('PB409');
    expect(JSON.parse(error.detail ?? 'null')).toMatchObject({ expected_version: 5, actual_version: 0 });
    expect(await stored('counter', missing)).toEqual({ events: [], version: undefined });

    // The right expected_version goes through.
    const rows = await inTransaction(client, () => client.query<AppendRow>(stale, [stream, 2]));
    expect(rows.rows.map((row) => row.stream_version)).toEqual([3]);
  });

  it('treats a known id as a duplicate: same position, nothing new written', async () => {
    const [client] = clients;
    if (!client) throw new Error('no client');
    const stream = randomUUID();
    const id = randomUUID();
    const withId = `select * from outbox.append_event(stream_type => 'counter', stream_id => $1, type => 'Counted',
      payload => $2::jsonb, id => $3, expected_version => $4)`;
    const first = await inTransaction(client, () =>
      client.query<AppendRow>(withId, [stream, '{"writer":"first","n":1}', id, 0]),
    );
    expect(first.rows).toEqual([
      expect.objectContaining({ event_id: id, stream_version: 1, duplicate: false }),
    ]);
    const position = first.rows[0]?.position;

    // The retry, even with another payload and expected_version 0 again, is a no-op reported as duplicate.
    const again = await inTransaction(client, () =>
      client.query<AppendRow>(withId, [stream, '{"writer":"retry","n":2}', id, 0]),
    );
    expect(again.rows).toEqual([
      expect.objectContaining({ event_id: id, position, stream_version: 1, duplicate: true }),
    ]);
    // Several ids in one call: the known one is skipped, the new one appended after it.
    const fresh = randomUUID();
    const mixed = await inTransaction(client, () =>
      client.query<AppendRow>(
        `select * from outbox.append_events(stream_type => 'counter', stream_id => $1,
           types => array['Counted', 'Counted'], payloads => $2::jsonb[], ids => $3::uuid[])`,
        [stream, ['{"writer":"retry","n":3}', '{"writer":"fresh","n":4}'], [id, fresh]],
      ),
    );
    const byVersion = [...mixed.rows].sort((a, b) => a.stream_version - b.stream_version);
    expect(byVersion.map((row) => [row.event_id, row.stream_version, row.duplicate])).toEqual([
      [id, 1, true],
      [fresh, 2, false],
    ]);
    // The TypeScript API sees the same: a duplicate, nothing appended.
    const fromTypescript = await t.db
      .transaction()
      .execute((trx) => appendEvents(trx, [Counted.create(stream, { writer: 'ts', n: 5 }, { id })]));
    expect(fromTypescript).toMatchObject({ events: [], duplicateIds: [id] });

    expect(await stored('counter', stream)).toEqual({
      events: [
        { stream_version: 1, type: 'Counted', id, payload: { writer: 'first', n: 1 } },
        { stream_version: 2, type: 'Counted', id: fresh, payload: { writer: 'fresh', n: 4 } },
      ],
      version: 2,
    });
  });

  it('delivers events appended from SQL to a consumer in stream order, once each', async () => {
    const streams = Array.from({ length: 6 }, () => randomUUID());
    const rounds = 3;
    const perStream = rounds * clients.length;
    // Each client appends to every stream in each round, starting at a different one, so that every stream
    // is written by all four clients at once.
    await Promise.all(
      clients.map(async (client, index) => {
        for (let round = 0; round < rounds; round++) {
          for (let s = 0; s < streams.length; s++) {
            const stream = streams[(s + index) % streams.length];
            const payload = JSON.stringify({ writer: `sql-${index}`, n: round });
            await inTransaction(client, () =>
              client.query(APPEND_ONE, ['counter', stream, 'Counted', payload]),
            );
          }
        }
      }),
    );
    await waitFor('every stream delivered', async () =>
      streams.every((stream) => handledVersions('counter', stream).length >= perStream),
    );
    const expected = Array.from({ length: perStream }, (_, i) => i + 1);
    for (const stream of streams) {
      expect((await stored('counter', stream)).events.map((event) => event.stream_version)).toEqual(expected);
      expect(handledVersions('counter', stream)).toEqual(expected);
    }
  });

  const guarded = `select * from outbox.append_events(stream_type => 'counter', stream_id => $1,
    types => array['Counted'], payloads => array['{"writer":"x","n":0}'::jsonb], require_transaction => true)`;
  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (error: unknown) => error,
    );

  it('refuses outside a transaction with require_transaction => true (SQLSTATE 25P01), writing nothing', async () => {
    const stream = randomUUID();
    // A simple query, as psql sends it.
    const refused = await failure(t.pool.query(guarded.replace('$1', `'${stream}'`)));
    expect(refused).toBeInstanceOf(pg.DatabaseError);
    expect(refused).toMatchObject({ code: '25P01' });
    expect(await stored('counter', stream)).toEqual({ events: [], version: undefined });

    // Inside BEGIN … COMMIT it appends; without the flag a lone statement commits on its own.
    const [client] = clients;
    if (!client) throw new Error('no client');
    await inTransaction(client, () => client.query(guarded, [stream]));
    await t.pool.query(APPEND_ONE, ['counter', stream, 'Counted', '{"writer":"x","n":1}']);
    expect((await stored('counter', stream)).events.map((event) => event.stream_version)).toEqual([1, 2]);
  });

  it('appendEvents on a pg client refuses without BEGIN, whether or not the client reports its transaction status', async () => {
    const stream = randomUUID();
    const client = await t.pool.connect();
    try {
      // pg >= 8.21 reports the protocol's transaction status; older clients do not, and the engine asks
      // the server with a simple query instead. Both must refuse (the function's own require_transaction
      // cannot see an implicit transaction over the extended protocol that appendEvents uses).
      const withoutStatus = { query: client.query.bind(client) } as Parameters<typeof appendEvents>[0];
      for (const target of [client, withoutStatus]) {
        const refused = await failure(appendEvents(target, [Counted.create(stream, { writer: 'ts', n: 0 })]));
        expect(refused).toBeInstanceOf(ValidationError);
        expect(String((refused as Error).message)).toMatch(/BEGIN/);
      }
      expect(await stored('counter', stream)).toEqual({ events: [], version: undefined });

      // After BEGIN both append, and a rollback takes the events away with the transaction.
      for (const target of [client, withoutStatus]) {
        await client.query('begin');
        await appendEvents(target, [Counted.create(stream, { writer: 'ts', n: 1 })]);
        await client.query('rollback');
      }
      expect(await stored('counter', stream)).toEqual({ events: [], version: undefined });
      // In a transaction that already failed, both say so instead of surfacing Postgres' 25P02.
      for (const target of [client, withoutStatus]) {
        await client.query('begin');
        await client.query('select 1/0').catch(() => undefined);
        const failed = await failure(appendEvents(target, [Counted.create(stream, { writer: 'ts', n: 1 })]));
        expect(failed).toBeInstanceOf(ValidationError);
        expect(String((failed as Error).message)).toMatch(/failed: roll it back/);
        await client.query('rollback');
      }
      await client.query('begin');
      await appendEvents(withoutStatus, [Counted.create(stream, { writer: 'ts', n: 2 })]);
      await client.query('commit');
      expect((await stored('counter', stream)).events.map((event) => event.stream_version)).toEqual([1]);
    } finally {
      client.release();
    }
  });

  it('refuses bad input with SQLSTATE 22023 naming the parameter, writing nothing', async () => {
    const [client] = clients;
    if (!client) throw new Error('no client');
    const stream = randomUUID();
    const cases: Array<{ text: string; values: unknown[]; parameter: string; message: RegExp }> = [
      {
        text: APPEND_ONE,
        values: ['counter', stream, 'not a type', '{}'],
        parameter: 'types[1]',
        message: /is not an event type/,
      },
      {
        text: APPEND_ONE,
        values: ['counter', stream, 'Counted', null],
        parameter: 'payloads[1]',
        message: /is null/,
      },
      {
        text: `select * from outbox.append_events(stream_type => 'counter', stream_id => $1,
          types => array['Counted', 'Counted'], payloads => array['{}'::jsonb])`,
        values: [stream],
        parameter: 'payloads',
        message: /one entry per event/,
      },
      {
        text: APPEND_ONE,
        values: ['9counter', stream, 'Counted', '{}'],
        parameter: 'stream_type',
        message: /is not a stream type/,
      },
    ];
    for (const { text, values, parameter, message } of cases) {
      const error = await refusal(client, text, values);
      expect({ code: error.code, column: error.column }).toEqual({ code: '22023', column: parameter });
      expect(error.message).toContain(`outbox.append_events: ${parameter}: `);
      expect(error.message).toMatch(message);
    }
    const anything = await t.pool.query<{ n: number }>(
      'select (select count(*)::int from outbox.events where stream_id = $1) + (select count(*)::int from outbox.streams where stream_id = $1) as n',
      [stream],
    );
    expect(anything.rows[0]?.n).toBe(0);
  });
});
