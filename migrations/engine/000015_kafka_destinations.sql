-- Kafka destinations beside NATS JetStream and RabbitMQ. The topic template and the bootstrap brokers
-- without credentials go in outbox.destinations.settings; the URL as given (SASL user and password
-- included) in outbox.destination_secrets.connection_url, like the other broker kinds.

alter table outbox.destinations drop constraint destinations_kind_check;
alter table outbox.destinations add constraint destinations_kind_check
  check (kind in ('webhook', 'nats', 'rabbitmq', 'kafka'));

comment on column outbox.destination_secrets.connection_url is
  'Broker destinations: the broker URL as given, with its user and password (nats://user:pass@host:4222, '
  'amqp://user:pass@host:5672/vhost, kafka://user:pass@host1:9092,host2:9092). Null for webhooks. '
  'Never returned by the API.';
