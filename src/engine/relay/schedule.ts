import type { AddJobsFunction } from 'graphile-worker';

/** graphile-worker task that drains one consumer partition. */
export const DRAIN_TASK = 'postbox_drain';

/** Payload of a {@link DRAIN_TASK} job. */
export interface DrainJobPayload {
  readonly consumer: string;
  readonly partition: number;
}

/** A consumer partition that may have work. */
export type DrainTarget = DrainJobPayload;

/**
 * Job key of a partition's drain job. With a key, graphile-worker keeps at most one *pending* job per
 * partition (re-adding updates it), and adding while one is *running* creates a fresh one, so news that
 * arrives during a drain is never dropped.
 */
export const drainJobKey = (target: DrainTarget): string =>
  `postbox:drain:${target.consumer}:${target.partition}`;

/** Separate key for a scheduled retry, so a future retry time never delays (or is delayed by) fresh work. */
export const retryJobKey = (target: DrainTarget): string =>
  `postbox:retry:${target.consumer}:${target.partition}`;

/**
 * Enqueues drain jobs in ONE `add_jobs` call (one round trip, one NOTIFY to the workers) however many
 * partitions are concerned.
 */
export async function scheduleDrains(
  addJobs: AddJobsFunction,
  targets: readonly DrainTarget[],
  runAt?: Date,
): Promise<void> {
  if (targets.length === 0) return;
  await addJobs(
    targets.map((target) => ({
      identifier: DRAIN_TASK,
      payload: { consumer: target.consumer, partition: target.partition },
      jobKey: drainJobKey(target),
      maxAttempts: 5,
      ...(runAt ? { runAt } : {}),
    })),
    // Due now: replace the pending job's run time with now. (Preserving it kept a later run time — a
    // graphile-worker retry backoff after a failed job — and fresh work then waited behind it.) With a
    // run time given, keep an earlier pending one: re-adding must never postpone work that is due.
    runAt !== undefined,
  );
}

/** Schedules a drain of `target` at `at` (its next retry), replacing an earlier schedule for the same key. */
export async function scheduleRetry(addJobs: AddJobsFunction, target: DrainTarget, at: Date): Promise<void> {
  await addJobs(
    [
      {
        identifier: DRAIN_TASK,
        payload: { ...target },
        jobKey: retryJobKey(target),
        runAt: at,
        maxAttempts: 5,
      },
    ],
    false,
  );
}
