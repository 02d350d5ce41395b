import pg from 'pg';
/** The Postgres server the bench runs on: a fresh embedded one, or one given by `--database-url`. */
export interface BenchServer {
  readonly kind: 'embedded' | 'external';
  /** Creates a fresh database, migrated (Postbox + graphile-worker) and with the bench's own tables. */
  createDatabase(label: string): Promise<BenchDatabase>;
  /** Server facts for the results file. */
  describe(): Promise<ServerFacts>;
  /** Drops what the bench created; stops and deletes an embedded server. */
  stop(): Promise<void>;
}
/** One scenario's database. Pools made through it are ended by {@link BenchDatabase.drop}. */
export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  /** A pool on this database. `sessionOptions` are `-c name=value` settings for every connection. */
  pool(max: number, sessionOptions?: Readonly<Record<string, string>>): pg.Pool;
  /** Seconds it took to create and migrate it. */
  readonly setupSeconds: number;
  /** Ends its pools and drops it. */
  drop(): Promise<void>;
}
/** What the results file records about the server. */
export interface ServerFacts {
  readonly kind: 'embedded' | 'external';
  readonly version: string;
  readonly settings: Record<string, string>;
}
/**
 * Starts the bench's server: a fresh embedded Postgres in a temporary directory with durable settings
 * (fsync, synchronous_commit and full_page_writes at their defaults: on), or the server of `databaseUrl`,
 * where the bench creates and drops databases of its own (the role needs CREATEDB).
 */
export declare function startBenchServer(databaseUrl: string | undefined): Promise<BenchServer>;
/** Replaces the database name of a connection string. */
export declare function withDatabase(url: string, database: string): string;
//# sourceMappingURL=server.d.ts.map
