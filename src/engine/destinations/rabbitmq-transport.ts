import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { binaryCloudEvent, renderTemplate } from './broker-message.ts';
import type { DestinationSettings } from './destination.ts';
import { brokerTransport, type DestinationTransport, errorMessage } from './transport.ts';

/** The `connection_name` a destination's AMQP connection shows in RabbitMQ (`rabbitmqctl list_connections`). */
export function amqpConnectionName(destination: string): string {
  return `postbox:${destination}`;
}

/** A connection and its confirm channel, with the exchange declared. */
interface AmqpSession {
  readonly connection: ChannelModel;
  readonly channel: ConfirmChannel;
  /** Set once the connection or the channel closed or failed: the next publish opens a new session. */
  broken: Error | undefined;
}

/**
 * Connects, opens a confirm channel and declares the destination's durable topic exchange (a no-op when
 * it exists with the same type; a channel error when it exists with another). Used by delivery, creation
 * and `testDestination`.
 */
export async function openAmqp(
  destination: string,
  connectionUrl: string,
  settings: DestinationSettings,
): Promise<{ connection: ChannelModel; channel: ConfirmChannel }> {
  const connection = await amqp.connect(connectionUrl, {
    timeout: settings.timeoutMs,
    clientProperties: { connection_name: amqpConnectionName(destination) },
  });
  // Failures surface through the operations (and the transport's own listeners); an 'error' event with
  // no listener would crash the process.
  connection.on('error', () => {});
  try {
    const channel = await connection.createConfirmChannel();
    channel.on('error', () => {});
    if (settings.exchange) await channel.assertExchange(settings.exchange, 'topic', { durable: true });
    return { connection, channel };
  } catch (error) {
    await connection.close().catch(() => {});
    throw error;
  }
}

/**
 * The `rabbitmq` kind: publishes the event on a confirm channel to the destination's durable topic
 * exchange with the rendered routing key, as a persistent message with `messageId` = the event id, `type`,
 * `timestamp`, `contentType` and the CloudEvents binary-mode `ce-*` headers; the body is the payload.
 * `delivered` only once the broker confirmed (ack); a nack, a closed channel or connection, or no confirm
 * within the timeout is `unavailable`: the engine publishes the same event again (same `messageId`) after
 * its backoff, on a new connection — consumers deduplicate on `messageId`, as RabbitMQ may have routed a
 * message whose confirm was lost.
 *
 * One connection and channel per destination, opened on first use and reopened after a loss (see
 * {@link brokerTransport}); {@link DestinationTransport.close} closes them once the publishes in flight are
 * done.
 */
export function rabbitmqTransport(
  destination: string,
  settings: DestinationSettings,
  connectionUrl: string,
): DestinationTransport {
  const exchange = settings.exchange ?? '';
  const routingKey = settings.routingKey ?? '';
  return brokerTransport<AmqpSession>(destination, {
    async open(forget) {
      const { connection, channel } = await openAmqp(destination, connectionUrl, settings);
      const current: AmqpSession = { connection, channel, broken: undefined };
      const lose = (error?: Error) => {
        current.broken ??= error ?? new Error('closed');
        // amqplib does not reconnect: the next publish opens a new session. Unconfirmed publishes fail
        // (amqplib rejects their callbacks when the channel closes) and are published again by the engine.
        forget();
      };
      connection.on('error', lose);
      connection.on('close', lose);
      channel.on('error', lose);
      channel.on('close', () => lose(new Error('channel closed')));
      return current;
    },
    async publish(current, event) {
      if (current.broken) throw current.broken;
      const { headers, body } = binaryCloudEvent(event);
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          new Promise<void>((resolve, reject) => {
            current.channel.publish(
              exchange,
              renderTemplate(routingKey, event),
              body,
              {
                persistent: true,
                messageId: event.id,
                type: event.type,
                timestamp: Math.floor(event.occurredAt.getTime() / 1000),
                contentType: 'application/json',
                appId: 'postbox',
                headers,
              },
              (error) =>
                error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(),
            );
          }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`no confirm within ${settings.timeoutMs} ms`)),
              settings.timeoutMs,
            );
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
    close: (current) => current.connection.close(),
    describe: (error) => `RabbitMQ: ${errorMessage(error)}`,
  });
}
