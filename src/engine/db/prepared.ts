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

/** The client Kysely sees: marked statements go through pg's named (prepared) query form. */
class PreparingClient implements PostgresPoolClient {
  readonly #client: pg.PoolClient;

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
    if (typeof text === 'string' && text.startsWith(PREPARE)) {
      return this.#client.query({ name: statementName(text), text, values });
    }
    // biome-ignore lint/suspicious/noExplicitAny: pass-through of the same overloads.
    return (this.#client.query as (...a: any[]) => any)(...args);
  }

  release(destroy?: boolean | Error): void {
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
