import type { Logger } from './logger.ts';

/** SQLSTATE classes and socket errors that mean "the database went away", not "the code is wrong". */
const connectionCodes = new Set([
  '57P01',
  '57P02',
  '57P03',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
]);

function isConnectionLoss(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (connectionCodes.has(code) || code.startsWith('08'))) return true;
  return (
    typeof message === 'string' &&
    /Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|Cannot use a pool after calling end/.test(
      message,
    )
  );
}

/**
 * graphile-worker 0.18 calls `completeJob(job)` and `failJob(…)` without awaiting them (dist/worker.js),
 * so when Postgres restarts while a job finishes, the rejection is unhandled — and Node's default for an
 * unhandled rejection is to crash the process. For Postbox a job left uncompleted is harmless: drains are
 * idempotent (the checkpoint, not the job, records progress) and the relay re-enqueues partitions that
 * still have work. So we log exactly that kind of rejection and keep running; every other unhandled
 * rejection still ends the process, as it should — unless the application installed an
 * `unhandledRejection` listener of its own, which then decides alone.
 *
 * @returns a function that removes the guard.
 */
export function guardWorkerRejections(logger: Logger): () => void {
  const onRejection = (reason: unknown) => {
    const stack = (reason as { stack?: unknown })?.stack;
    if (isConnectionLoss(reason) && typeof stack === 'string' && stack.includes('graphile-worker')) {
      logger.warn(
        { err: { message: (reason as Error).message, code: (reason as { code?: string }).code } },
        'graphile-worker could not record a job outcome (database unavailable); the relay will re-enqueue',
      );
      return;
    }
    // The application has its own handler: it decides (Node does not apply its default while one exists).
    if (process.listenerCount('unhandledRejection') > 1) return;
    logger.fatal({ err: reason }, 'unhandled promise rejection');
    // Same outcome as Node's default (--unhandled-rejections=throw), after logging through pino.
    setImmediate(() => {
      throw reason;
    });
  };
  process.on('unhandledRejection', onRejection);
  return () => process.removeListener('unhandledRejection', onRejection);
}
