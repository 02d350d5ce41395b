-- API keys for the GraphQL API. Only a hash of each secret is stored; the key itself is shown once.

create table postbox.api_keys (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 100),
  -- The public part of the key (`pbx_<prefix>_<secret>`), to find the row without scanning hashes.
  prefix text not null unique check (prefix ~ '^[a-z0-9]{10}$'),
  secret_sha256 bytea not null,
  scopes text[] not null check (scopes <@ array['orders:write', 'events:read', 'admin']::text[]),
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
comment on table postbox.api_keys is
  'API keys: a SHA-256 of the secret (keys are 256-bit random, so a slow password hash buys nothing), scopes, revocation.';
