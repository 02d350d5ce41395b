import { CloudEvent } from 'cloudevents';
import type { RecordedEvent } from '../outbox/event.ts';

/** `source` of every CloudEvent Postbox sends (the log it comes from). */
export const CLOUD_EVENT_SOURCE = '/postbox';

/**
 * One recorded event as a CloudEvents 1.0 envelope, structured JSON mode (the body of a webhook):
 * `id` = the event id (stable across retries and replays), `subject` = `<streamType>/<streamId>`,
 * `data` = the payload, and extensions `streamtype`, `streamid`, `streamversion`, `logposition`,
 * `correlationid`, `causationid` and `traceparent` when known. Built with the `cloudevents` SDK, which
 * checks the attribute names and types against the spec.
 */
export function toCloudEvent(event: RecordedEvent): string {
  const metadata = event.metadata;
  const text = (key: string) => (typeof metadata[key] === 'string' ? (metadata[key] as string) : undefined);
  const extensions: Record<string, string | number> = {
    streamtype: event.streamType,
    streamid: event.streamId,
    streamversion: event.streamVersion,
    logposition: event.position,
  };
  const correlation = text('correlationId');
  const causation = text('causationId');
  const traceparent = text('traceparent');
  if (correlation) extensions.correlationid = correlation;
  if (causation) extensions.causationid = causation;
  if (traceparent) extensions.traceparent = traceparent;
  const cloudEvent = new CloudEvent(
    {
      specversion: '1.0',
      id: event.id,
      source: CLOUD_EVENT_SOURCE,
      type: event.type,
      subject: `${event.streamType}/${event.streamId}`,
      time: event.occurredAt.toISOString(),
      datacontenttype: 'application/json',
      data: event.payload,
      ...extensions,
    },
    true,
  );
  return JSON.stringify(cloudEvent.toJSON());
}
