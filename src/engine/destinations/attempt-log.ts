import { sql } from 'kysely';
import type { EngineDb } from '../db/database.ts';
import { DEFAULTS } from '../defaults.ts';
import type { Logger } from '../logger.ts';

/** One delivery attempt, as kept in `outbox.destination_attempts`. */
export interface AttemptRecord {
  readonly destination: string;
  readonly eventId: string;
  readonly attempt: number;
  readonly outcome: 'delivered' | 'failed' | 'deferred' | 'ping';
  readonly status: number | undefined;
  readonly durationMs: number;
  readonly error: string | undefined;
  readonly responseSnippet: string | undefined;
  readonly at: Date;
}

/** How often buffered attempts are written, ms. */
const FLUSH_MS = 250;

/**
 * The bounded log of recent delivery attempts. Attempts are buffered and written every 250 ms in one
 * INSERT per flush, outside delivery transactions (a debugging aid must not add a write per delivery to
 * the hot path); each flush trims every destination it touched to its last `keep` rows. A crash loses at
 * most the last 250 ms of the log — never a delivery.
 */
export class AttemptLog {
  readonly #db: EngineDb;
  readonly #logger: Logger;
  readonly #keep: number;
  #buffer: AttemptRecord[] = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(db: EngineDb, logger: Logger, keep: number = DEFAULTS.destination.attemptLogSize) {
    this.#db = db;
    this.#logger = logger;
    this.#keep = keep;
  }

  /** Buffers one attempt. */
  record(attempt: AttemptRecord): void {
    this.#buffer.push(attempt);
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, FLUSH_MS);
  }

  /** Writes what is buffered (also called on stop). */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#write());
    return this.#flushing;
  }

  async #write(): Promise<void> {
    const batch = this.#buffer.splice(0);
    if (batch.length === 0) return;
    try {
      await sql`
        insert into outbox.destination_attempts
          (destination, event_id, attempt, outcome, status, duration_ms, error, response_snippet, at)
        select a.destination, a.event_id, a.attempt, a.outcome, a.status, a.duration_ms, a.error, a.snippet, a.at
        from jsonb_to_recordset(${JSON.stringify(
          batch.map((entry) => ({
            destination: entry.destination,
            event_id: entry.eventId,
            attempt: entry.attempt,
            outcome: entry.outcome,
            status: entry.status ?? null,
            duration_ms: Math.round(entry.durationMs),
            error: entry.error?.slice(0, 2000) ?? null,
            snippet: entry.responseSnippet || null,
            at: entry.at.toISOString(),
          })),
        )}::jsonb) as a(destination text, event_id uuid, attempt int, outcome text, status int,
                        duration_ms int, error text, snippet text, at timestamptz)
        where exists (select 1 from outbox.destinations d where d.name = a.destination)`.execute(this.#db);
      const names = [...new Set(batch.map((entry) => entry.destination))];
      await sql`
        delete from outbox.destination_attempts a
        using (select d.name, (select x.id from outbox.destination_attempts x where x.destination = d.name
                               order by x.id desc offset ${this.#keep} limit 1) as cut
               from unnest(${names}::text[]) d(name)) k
        where a.destination = k.name and a.id <= k.cut`.execute(this.#db);
    } catch (error) {
      this.#logger.warn({ err: error }, 'destination attempt log: write failed (entries dropped)');
    }
  }
}
