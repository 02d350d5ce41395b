-- Issues an invoice and announces it, in one transaction: the invoice row and the InvoiceIssued event commit
-- together or not at all. Any SQL client can do the same (psycopg, JDBC, Prisma's $executeRaw...).
--
--   psql -X -v ON_ERROR_STOP=1 \
--     -v invoice_id=$(uuidgen) -v event_id=$(uuidgen) -v customer=ada -v amount_cents=1250 \
--     -f issue-invoice.sql "$DATABASE_URL"
--
-- Generate event_id once per invoice and reuse it when you retry: a retry of a committed run writes nothing
-- and reports duplicate = t. Variables go in as quoted literals (:'name'), never spliced as SQL.
\set ON_ERROR_STOP on

begin;

insert into billing.invoices (id, customer, amount_cents)
values (:'invoice_id', :'customer', :'amount_cents')
on conflict (id) do nothing;

select event_id, position, stream_version, duplicate
from outbox.append_event(
  stream_type => 'invoice',
  stream_id => :'invoice_id',
  type => 'InvoiceIssued',
  payload => jsonb_build_object(
    'invoiceId', :'invoice_id'::text,
    'customer', :'customer'::text,
    'amountCents', :'amount_cents'::integer
  ),
  metadata => jsonb_build_object('actor', 'billing-psql'),
  -- 0: the stream invoice/<id> must not exist yet. Another event id for the same invoice fails with
  -- SQLSTATE PB409 (and the whole transaction, invoice row included, rolls back).
  expected_version => 0,
  -- Idempotency: an id already in the log is not appended again (duplicate = t, same position).
  id => :'event_id'
);

commit;
