import {
  type JetStreamClient,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
import { binaryCloudEvent, renderTemplate, subjectFilter } from './broker-message.ts';
import type { DestinationSettings } from './destination.ts';
import { brokerTransport, type DestinationTransport, errorMessage } from './transport.ts';

/** No responder on the subject: no stream captures it (or JetStream is off). The client's class is not exported. */
function isNoStream(error: unknown): boolean {
  return error instanceof Error && error.name === 'JetStreamNotEnabled';
}

/** How long a re-publish of the same event id is recognised by a stream the destination creates, ms. */
export const CREATED_STREAM_DUPLICATE_WINDOW_MS = 600_000;

/** The JetStream stream a `nats` destination creates when `createStream` is on. */
export function createdStreamName(destination: string): string {
  return `postbox_${destination.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

/** What a NATS connection is made from: the URL with its credentials, split for the client. */
export function natsConnectOptions(connectionUrl: string, timeoutMs: number) {
  const parsed = new URL(connectionUrl);
  const user = decodeURIComponent(parsed.username);
  const pass = decodeURIComponent(parsed.password);
  const port = parsed.port || '4222';
  return {
    servers: `${parsed.protocol === 'tls:' ? 'tls' : 'nats'}://${parsed.hostname}:${port}`,
    ...(user && pass ? { user, pass } : user ? { token: user } : {}),
    ...(parsed.protocol === 'tls:' ? { tls: {} } : {}),
    timeout: timeoutMs,
    name: 'postbox',
    // Reconnect for ever: the connection is the destination's, and publishes fail (and are retried by
    // the engine) while it is down.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  };
}

/** Connects and checks JetStream answers (the account has it enabled). Used by creation and `testDestination`. */
export async function openNats(connectionUrl: string, timeoutMs: number): Promise<NatsConnection> {
  return connect(natsConnectOptions(connectionUrl, timeoutMs));
}

/**
 * Whether a JetStream stream captures the destination's subjects (or it may create one). Throws with a
 * readable message otherwise.
 */
export async function checkNatsTarget(
  nc: NatsConnection,
  destination: string,
  settings: DestinationSettings,
): Promise<void> {
  const jsm = await jetstreamManager(nc, { timeout: settings.timeoutMs });
  if (settings.createStream) return;
  const filter = subjectFilter(settings.subject ?? '');
  const stream = await jsm.streams.find(filter).catch(() => undefined);
  if (!stream)
    throw new Error(
      `no JetStream stream captures ${filter}; create one or set createStream (it would be ${createdStreamName(destination)})`,
    );
}

/**
 * With `createStream`: makes sure a JetStream stream captures the destination's subjects — nothing to do
 * when one does; else creates `postbox_<name>` (file storage, limits retention, a 10-minute duplicate
 * window), or, when that stream exists from an earlier subject template, adds the new subjects to it.
 * Done when the connection opens, before the first publish (a plain subscriber on the subjects would hide
 * the "no stream" answer).
 */
export async function ensureStream(
  nc: NatsConnection,
  destination: string,
  settings: DestinationSettings,
): Promise<void> {
  const jsm = await jetstreamManager(nc, { timeout: settings.timeoutMs });
  const filter = subjectFilter(settings.subject ?? '');
  if (await jsm.streams.find(filter).catch(() => undefined)) return;
  const name = createdStreamName(destination);
  const existing = await jsm.streams.info(name).catch(() => undefined);
  if (existing) {
    await jsm.streams.update(name, { subjects: [...(existing.config.subjects ?? []), filter] });
    return;
  }
  await jsm.streams.add({
    name,
    subjects: [filter],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    duplicate_window: CREATED_STREAM_DUPLICATE_WINDOW_MS * 1_000_000,
  });
}

/**
 * The `nats` kind: a JetStream publish of the event to its subject, CloudEvents binary mode (`ce-*`
 * headers, the payload as the body), with `Nats-Msg-Id` = the event id: a re-publish after a crash, a
 * lost ack or a broker restart falls in the stream's duplicate window and is dropped (the PubAck says
 * `duplicate`). `delivered` only once the PubAck came back; no ack within the timeout, a broken
 * connection or a missing stream is `unavailable` (retried, counted by the circuit).
 *
 * One connection per destination, opened on first use and kept (the client reconnects by itself; see
 * {@link brokerTransport}); {@link DestinationTransport.close} drains it once the publishes in flight are done.
 */
export function natsTransport(
  destination: string,
  settings: DestinationSettings,
  connectionUrl: string,
): DestinationTransport {
  const subject = settings.subject ?? '';
  return brokerTransport<{ nc: NatsConnection; js: JetStreamClient }>(destination, {
    async open() {
      const nc = await openNats(connectionUrl, settings.timeoutMs);
      if (settings.createStream) {
        try {
          await ensureStream(nc, destination, settings);
        } catch (error) {
          await nc.close().catch(() => {});
          throw error;
        }
      }
      return { nc, js: jetstream(nc, { timeout: settings.timeoutMs }) };
    },
    async publish({ nc, js }, event) {
      const { headers, body } = binaryCloudEvent(event);
      const h = natsHeaders();
      for (const [key, value] of Object.entries(headers)) h.set(key, value);
      const target = renderTemplate(subject, event);
      const options = { msgID: event.id, headers: h, timeout: settings.timeoutMs };
      try {
        await js.publish(target, body, options);
      } catch (error) {
        if (!isNoStream(error) || !settings.createStream) throw error;
        await ensureStream(nc, destination, settings);
        await js.publish(target, body, options);
      }
    },
    close: ({ nc }) => nc.close(),
    describe: (error, event) =>
      isNoStream(error)
        ? `NATS: no JetStream stream captures ${renderTemplate(subject, event)} (or JetStream is off)`
        : `NATS: ${errorMessage(error)}`,
  });
}
