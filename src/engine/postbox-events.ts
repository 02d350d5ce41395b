import { EventEmitter } from 'node:events';
import type { DeliveryOutcome } from './consumers/drain.ts';
import type { DestinationAttempt } from './destinations/deliver.ts';

/** What the relay did, as reported by a {@link PostboxEventMap} `relay` event. */
export interface RelayActivity {
  /** `wakeup`: a NOTIFY arrived; `scan`: new events were scheduled; `poll`: the periodic safety net ran. */
  readonly kind: 'wakeup' | 'poll' | 'scan';
  /** Partitions scheduled for a drain. */
  readonly scheduled: number;
}

/**
 * The engine's observable events (graphile-worker's `WorkerEventMap` pattern): metrics, logs and traces
 * subscribe here, and the engine never imports them. Listeners run synchronously; one that throws is
 * ignored (it must never break delivery).
 */
export interface PostboxEventMap {
  /** A handler call whose transaction committed (failures included: `ok: false`). */
  delivery: [outcome: DeliveryOutcome];
  /** Relay activity. */
  relay: [activity: RelayActivity];
  /** A destination's request got an answer or failed to (deferrals while the circuit is open are not requests). */
  destinationAttempt: [attempt: DestinationAttempt];
  /** A queued drain job (graphile-worker) started in this process; hand-offs from the relay are not jobs. */
  job: [target: { readonly consumer: string; readonly partition: number }];
}

/** A typed emitter of {@link PostboxEventMap}. */
export type PostboxEvents = EventEmitter<PostboxEventMap>;

/** Makes the emitter, and an `emit` that never lets a listener's exception into the engine. */
export function createPostboxEvents(): {
  events: PostboxEvents;
  emit: <K extends keyof PostboxEventMap>(name: K, ...args: PostboxEventMap[K]) => void;
} {
  const events: PostboxEvents = new EventEmitter<PostboxEventMap>();
  return {
    events,
    emit(name, ...args) {
      try {
        (events.emit as (name: string, ...rest: unknown[]) => boolean)(name, ...args);
      } catch {
        // observers must never break delivery
      }
    },
  };
}
