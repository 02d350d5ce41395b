import type { DeliveryDeps } from './deliver.ts';
import { webhookTransport } from './deliver.ts';
import { kafkaTransport } from './kafka-transport.ts';
import { natsTransport } from './nats-transport.ts';
import { rabbitmqTransport } from './rabbitmq-transport.ts';
import type { StoredDestination } from './stored-destination.ts';
import type { DestinationTransport } from './transport.ts';

/** The transport of a destination's kind (a broker connection is opened on its first delivery). */
export function transportFor(destination: StoredDestination, deps: DeliveryDeps): DestinationTransport {
  switch (destination.kind) {
    case 'webhook':
      return webhookTransport(destination, deps.sender);
    case 'nats':
      return natsTransport(destination.name, destination.settings, connectionUrlOf(destination));
    case 'rabbitmq':
      return rabbitmqTransport(destination.name, destination.settings, connectionUrlOf(destination));
    case 'kafka':
      return kafkaTransport(destination.name, destination.settings, connectionUrlOf(destination));
  }
}

function connectionUrlOf(destination: StoredDestination): string {
  return destination.connectionUrl ?? destination.settings.url;
}
