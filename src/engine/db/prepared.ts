import { createHash } from 'node:crypto';
import type { PostgresPool, PostgresPoolClient } from 'kysely';
import type pg from 'pg';

/**
 * Put at the very start of a statement's text to have it run as a named prepared statement on every
 * connection of a {@link createDb} pool: parsed and planned once per connection instead of once per call.
 *
 * Why: Kysely's pg driver sends every query unnamed, so Postgres parses and plans it each time. For the
 * append statement (a CTE that locks the stream row and inserts from `unnest`) planning costs more than
 * executing: measured serially without fsync, prepared ≈ 0.67 ms per transaction vs ≈ 1.3 ms unnamed
 * (bench/probes/append-breakdown.ts shows the effect under concurrency). Kysely has no prepared-statement
 * support, hence this small adapter.
 *
 * Only for statements whose text is one of a few fixed strings (values go in parameters) and whose best
 * plan does not depend on the parameter values: after five executions Postgres may switch a prepared
 * statement to a generic plan.
 */
export const PREPARE = '/*postbox:prepare*/';

const names = new Map<string, string>();

/** A stable statement name per text (pg refuses one name for two texts on a connection). */
function statementName(text: string): string {
  let name = names.get(text);
  if (!name) {
    name = `postbox_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    names.set(text, name);
  }
  return name;
}

/** What pg resolves for a statement without rows, answered locally for a BEGIN not sent yet. */
const noRows = (command: string) => ({ command, rowCount: null, oid: 0, rows: [], fields: [] });

/**
 * The client Kysely sees. Two round-trip savings, invisible to the caller:
 *
 * - Marked statements ({@link PREPARE}) go through pg's named (prepared) query form.
 * - A transaction's `begin` (what Kysely sends, alone, for `transaction()` and `startTransaction()`) is held
 *   and sent in the same simple-protocol message as the transaction's first statement when that one has no
 *   parameters (`begin;<statement>`), as the engine's delivery transactions do: their first statement sets
 *   the timeouts and takes the partition lock. Otherwise the `begin` goes first, on its own, as before. The
 *   transaction starts before the statement either way, and a statement that fails leaves it open and
 *   aborted, as it would have. node-postgres does not pipeline, so a held `begin` is the only way to share
 *   the round trip; a hand-written pipeline would duplicate the driver.
 */
class PreparingClient implements PostgresPoolClient {
  readonly #client: pg.PoolClient;
  #beginHeld = false;

  constructor(client: pg.PoolClient) {
    this.#client = client;
  }

  /** Kysely reads this undocumented pg member to cancel queries; pass it through. */
  get processID(): number | undefined {
    return (this.#client as unknown as { processID?: number }).processID;
  }

  // biome-ignore lint/suspicious/noExplicitAny: mirrors pg's overloaded query signature that Kysely calls.
  query(...args: any[]): any {
    const [text, values] = args;
    const plain =
      typeof text === 'string' && args.length <= 2 && (values === undefined || values.length === 0);
    if (plain && text === 'begin' && !this.#beginHeld) {
      this.#beginHeld = true;
      return Promise.resolve(noRows('BEGIN'));
    }
    if (this.#beginHeld) {
      this.#beginHeld = false;
      // An empty transaction: nothing was sent, nothing to end.
      if (plain && (text === 'commit' || text === 'rollback'))
        return Promise.resolve(noRows(text.toUpperCase()));
      if (plain && !text.startsWith(PREPARE)) {
        return this.#client.query(`begin;${text}`).then((results) => {
          // pg answers a multi-statement message with one result per statement: drop the BEGIN's.
          const all = results as unknown as pg.QueryResult[];
          return all.length === 2 ? all[1] : all.slice(1);
        });
      }
      // Sent first, not awaited: pg runs a client's queries one after the other, and a caller passing a
      // submittable (a cursor for Kysely's stream()) gets it back at once, as without a held BEGIN. Should
      // the BEGIN fail, the connection is broken and the statement queued after it fails too.
      this.#client.query('begin').catch(() => undefined);
    }
    if (typeof text === 'string' && text.startsWith(PREPARE)) {
      return this.#client.query({ name: statementName(text), text, values });
    }
    // biome-ignore lint/suspicious/noExplicitAny: pass-through of the same overloads.
    return (this.#client.query as (...a: any[]) => any)(...args);
  }

  release(destroy?: boolean | Error): void {
    this.#beginHeld = false;
    this.#client.release(destroy);
  }
}

/**
 * The pool Kysely is given: hands out {@link PreparingClient}s over the caller's pg pool. One wrapper per pg
 * client, because Kysely keys its connection objects by the client instance.
 */
export class PreparingPool implements PostgresPool {
  readonly #pool: pg.Pool;
  readonly #clients = new WeakMap<pg.PoolClient, PreparingClient>();

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  /** Kysely builds its query-cancelling control client from these (as it would from a pg pool). */
  get Client(): typeof pg.Client {
    return (this.#pool as unknown as { Client: typeof pg.Client }).Client;
  }

  get options(): pg.PoolConfig {
    return this.#pool.options;
  }

  async connect(): Promise<PreparingClient> {
    const client = await this.#pool.connect();
    let wrapped = this.#clients.get(client);
    if (!wrapped) {
      wrapped = new PreparingClient(client);
      this.#clients.set(client, wrapped);
    }
    return wrapped;
  }

  end(): Promise<void> {
    return this.#pool.end();
  }
}
