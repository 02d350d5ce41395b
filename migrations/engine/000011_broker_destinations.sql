-- Broker destinations: NATS JetStream and RabbitMQ beside the webhook. Their target settings (URL without
-- credentials, subject or exchange and routing key templates) go in outbox.destinations.settings like a
-- webhook's; the URL as given, credentials included, is a secret and lives in outbox.destination_secrets.

alter table outbox.destinations drop constraint destinations_kind_check;
alter table outbox.destinations add constraint destinations_kind_check
  check (kind in ('webhook', 'nats', 'rabbitmq'));

alter table outbox.destination_secrets add column connection_url text;
comment on column outbox.destination_secrets.connection_url is
  'Broker destinations: the broker URL as given, with its user and password (nats://user:pass@host:4222, '
  'amqp://user:pass@host:5672/vhost). Null for webhooks. Never returned by the API.';
