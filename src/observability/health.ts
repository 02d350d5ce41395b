import type pg from 'pg';
import { SERVICE_LINES } from '../db/migration-lines.ts';
import { migrationStatus } from '../engine/index.ts';

/** One readiness check's result. */
export interface CheckResult {
  readonly ok: boolean;
  /** What a caller of `/readyz` sees: generic (`unreachable`, `timed out`…), never an address or a message. */
  readonly detail: string;
  /** The error behind a failed check, for the log only (`/readyz` never shows it). */
  readonly cause?: unknown;
}

/** What `/readyz` reports. */
export interface Readiness {
  readonly ready: boolean;
  readonly checks: {
    readonly database: CheckResult;
    readonly migrations: CheckResult;
    readonly workers: CheckResult;
  };
}

/** Options of {@link checkReadiness}. */
export interface ReadinessOptions {
  readonly pool: pg.Pool;
  /**
   * Whether this process runs the relay and consumers, and if so whether they are running. `undefined`:
   * workers are not part of this process (`--no-workers`), which does not make it unready.
   */
  readonly workersRunning: (() => boolean) | undefined;
  /** Per-check time limit. Default 2000 ms. */
  readonly timeoutMs?: number;
}

/**
 * Readiness: the database answers, every migration on disk is applied, and — where this process runs them —
 * the relay and graphile-worker are running. Liveness (`/healthz`) is just "the process answers".
 */
export async function checkReadiness(options: ReadinessOptions): Promise<Readiness> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const withTimeout = async (work: () => Promise<CheckResult>): Promise<CheckResult> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work(),
        new Promise<CheckResult>((resolve) => {
          timer = setTimeout(() => resolve({ ok: false, detail: 'timed out' }), timeoutMs);
        }),
      ]);
    } catch (error) {
      return { ok: false, detail: 'unavailable', cause: error };
    } finally {
      clearTimeout(timer);
    }
  };
  const [database, migrations] = await Promise.all([
    withTimeout(async () => {
      await options.pool.query('select 1');
      return { ok: true, detail: 'reachable' };
    }),
    withTimeout(async () => {
      const status = await migrationStatus({ pool: options.pool, lines: SERVICE_LINES });
      const pending = status
        .filter((migration) => migration.state === 'pending')
        .map((migration) => `${migration.line}/${migration.name}`);
      return pending.length === 0
        ? { ok: true, detail: `${status.length} applied` }
        : { ok: false, detail: `pending: ${pending.join(', ')}` };
    }),
  ]);
  const workers: CheckResult =
    options.workersRunning === undefined
      ? { ok: true, detail: 'not run in this process' }
      : options.workersRunning()
        ? { ok: true, detail: 'running' }
        : { ok: false, detail: 'stopped' };
  return { ready: database.ok && migrations.ok && workers.ok, checks: { database, migrations, workers } };
}
