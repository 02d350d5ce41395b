/**
 * The channel of the log's wake-up NOTIFY: `outbox.wake_relay()` (migrations/engine/000001) notifies it
 * with payload `''` when events are appended while the relay sleeps, and admin actions notify it with
 * `'poll'`. A hint only, never delivery: readers must still poll. Part of the log's contract, so the relay
 * and any other reader (the service's log tailer) listen on the same name.
 */
export const WAKE_CHANNEL = 'postbox_events';
