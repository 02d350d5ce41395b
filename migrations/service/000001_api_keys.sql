-- The service's own schema: API keys for the GraphQL API. Only a hash of each secret is stored; the key
-- itself is shown once. The log's read-only role (postbox_reader) never reads this schema.

create schema if not exists postbox;
comment on schema postbox is 'Postbox service: API keys.';

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

do $$
begin
  if exists (select from pg_roles where rolname = 'postbox_reader') then
    revoke all on schema postbox from postbox_reader;
    revoke all on all tables in schema postbox from postbox_reader;
  end if;
end
$$;
