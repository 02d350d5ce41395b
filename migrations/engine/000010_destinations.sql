-- Destinations: consumers whose handler delivers outside the database (webhooks now; broker kinds later).
-- A destination IS a consumer (a row of outbox.consumers with kind 'destination'): it has partitions,
-- checkpoints, blocked streams, dead letters, pause/replay and lag like any handler. The tables below hold
-- what only a destination has: where it delivers, its secrets, its circuit and a short log of attempts.

alter table outbox.consumers
  add column kind text not null default 'handler' check (kind in ('handler', 'destination'));
comment on column outbox.consumers.kind is
  'handler = a consumer declared in code (its handler runs in the delivery transaction); destination = '
  'outbox.destinations holds it (managed at runtime or declared in code; its handler delivers outside).';

create table outbox.destinations (
  name text primary key references outbox.consumers (name) on delete cascade,
  kind text not null check (kind in ('webhook')),
  -- Kind-specific target settings without secrets, e.g. {"url": "...", "timeoutMs": 10000} for a webhook.
  settings jsonb not null,
  -- {"maxAttempts", "initialDelayMs", "maxDelayMs", "jitter"}: the consumer retry policy.
  retry jsonb not null,
  -- {"failureThreshold", "coolDownMs"}: when the circuit opens and how long it stays open.
  breaker jsonb not null,
  state text not null default 'active' check (state in ('active', 'paused', 'disabled')),
  state_reason text,
  declared_in text not null default 'runtime' check (declared_in in ('code', 'runtime')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table outbox.destinations is
  'Outside systems that receive the log (webhooks). state: active; paused by an operator; disabled by the '
  'receiver (HTTP 410 Gone) until resumed. Secrets are in outbox.destination_secrets.';

-- Secrets live apart so that reading destinations never reads them, and the analysts' role can be denied them.
create table outbox.destination_secrets (
  destination text primary key references outbox.destinations (name) on delete cascade,
  signing_secret text not null check (signing_secret like 'whsec\_%'),
  -- After a rotation the previous secret still signs until previous_expires_at (receivers switch over).
  previous_secret text,
  previous_expires_at timestamptz,
  -- Extra request headers (e.g. Authorization), secret like the signing key.
  headers jsonb not null default '{}',
  updated_at timestamptz not null default now()
);
comment on table outbox.destination_secrets is
  'Signing secrets (whsec_…) and custom headers of destinations. Never returned by the API.';

-- One circuit per destination, shared by every worker process (they read and move it here).
create table outbox.destination_circuits (
  destination text primary key references outbox.destinations (name) on delete cascade,
  state text not null default 'closed' check (state in ('closed', 'open', 'half_open')),
  since timestamptz not null default now(),
  consecutive_failures integer not null default 0,
  -- open: no request before this; then one process claims the half-open probe.
  open_until timestamptz,
  -- half_open: the probe's lease; past it (the prober died), another process may probe.
  probe_until timestamptz,
  last_error text,
  last_failure_at timestamptz
);
comment on table outbox.destination_circuits is
  'Circuit breaker per destination: closed (requests flow), open (none until open_until), half_open (one '
  'probe in flight). Moved by single-row UPDATEs outside delivery transactions, so every process sees it.';

-- A bounded log of recent delivery attempts per destination, for debugging a failing receiver.
create table outbox.destination_attempts (
  id bigint generated always as identity primary key,
  destination text not null references outbox.destinations (name) on delete cascade,
  event_id uuid not null,
  attempt integer not null,
  outcome text not null check (outcome in ('delivered', 'failed', 'deferred', 'ping')),
  status integer,
  duration_ms integer not null,
  error text,
  response_snippet text,
  at timestamptz not null default now()
);
create index destination_attempts_recent_idx on outbox.destination_attempts (destination, id desc);
comment on table outbox.destination_attempts is
  'Recent delivery attempts (the last few hundred per destination; older rows are trimmed as new ones come).';

create view outbox.destination_recent_attempts as
select a.destination, a.at, a.event_id, a.attempt, a.outcome, a.status, a.duration_ms, a.error, a.response_snippet
from outbox.destination_attempts a
order by a.destination, a.id desc;
comment on view outbox.destination_recent_attempts is
  'Recent delivery attempts per destination, newest first: status (null = no response), duration, the first '
  'bytes of the response, the error. Filter by destination.';

do $$
begin
  if exists (select from pg_roles where rolname = 'postbox_reader') then
    revoke all on outbox.destination_secrets from postbox_reader;
  end if;
end
$$;
