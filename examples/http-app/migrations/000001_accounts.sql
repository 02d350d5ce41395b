-- The example app's own schema, applied as the migration line `app` after the engine's (`outbox`).
create schema app;

create table app.accounts (
  id uuid primary key,
  owner text not null check (length(owner) between 1 and 100),
  -- The last line of defence against overdrafts: a withdrawal that would go below zero fails here, and its
  -- transaction (event included) rolls back.
  balance_cents bigint not null default 0 check (balance_cents >= 0),
  created_at timestamptz not null default now()
);

create table app.deposits (
  id uuid primary key,
  account_id uuid not null references app.accounts (id),
  amount_cents bigint not null check (amount_cents > 0),
  created_at timestamptz not null default now()
);

-- Written by the `activity` consumer, one row per handled event. No unique key on event_id on purpose: the
-- engine's exactly-once delivery is what keeps it at one row per event, and a duplicate would show here.
create table app.activity (
  event_id uuid not null,
  account_id uuid not null,
  kind text not null,
  amount_cents bigint,
  stream_version integer not null,
  handled_at timestamptz not null default now()
);

-- Also written by the consumer: counters updated by increments, so a redelivered event would count twice.
create table app.statements (
  account_id uuid primary key,
  events_handled integer not null,
  net_cents bigint not null
);
