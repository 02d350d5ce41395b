import type { AddJobsFunction } from 'graphile-worker';

/**
 * The graphile-worker task of earlier versions, for every consumer: jobs queued under it before an upgrade
 * are still run (and passed on to their consumer's own task when this process does not run it).
 */
export const DRAIN_TASK = 'postbox_drain';

/**
 * The graphile-worker task that drains a partition of `consumer`. One task per consumer, because a worker
 * only fetches jobs of the tasks it registered: a process registers the consumers it runs, so a drain job
 * reaches a process that runs its consumer, whichever process's relay enqueued it (several deployments
 * with different consumers can share a database).
 */
export const drainTaskOf = (consumer: string, destination = false): string =>
  destination ? DESTINATION_DRAIN_TASK : `${DRAIN_TASK}:${consumer}`;

/**
 * The one task of every destination's drains. Destinations are created while processes run, and a
 * graphile-worker runner's task list is fixed when it starts: every process that delivers destinations
 * registers this task (and learns new destinations from the database; see DestinationSync).
 */
export const DESTINATION_DRAIN_TASK = 'postbox_drain_destinations';

/** Payload of a drain job. */
export interface DrainJobPayload {
  readonly consumer: string;
  readonly partition: number;
  /** The consumer is a destination (drained under {@link DESTINATION_DRAIN_TASK}). */
  readonly destination?: boolean;
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
      identifier: drainTaskOf(target.consumer, target.destination === true),
      payload: {
        consumer: target.consumer,
        partition: target.partition,
        ...(target.destination ? { destination: true } : {}),
      },
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
        identifier: drainTaskOf(target.consumer, target.destination === true),
        payload: { ...target },
        jobKey: retryJobKey(target),
        runAt: at,
        maxAttempts: 5,
      },
    ],
    false,
  );
}
