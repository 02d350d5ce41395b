-- The producer's own table (run once, after `postbox migrate` installed the outbox schema):
--   psql -v ON_ERROR_STOP=1 -f schema.sql "$DATABASE_URL"
create schema if not exists billing;

create table if not exists billing.invoices (
  id uuid primary key,
  customer text not null check (length(customer) between 1 and 100),
  amount_cents integer not null check (amount_cents > 0),
  issued_at timestamptz not null default now()
);
