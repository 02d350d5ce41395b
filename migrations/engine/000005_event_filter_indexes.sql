-- every filter of the API's `events` connection and subscription catch-up is indexed.
-- (The correlationId filter uses events_correlation_idx once its query carries the index predicate.)

-- streamId without streamType: events_stream_version_key leads with stream_type.
create index events_stream_id_idx on outbox.events (stream_id);

-- from/to: a B-tree beside the BRIN, so that a narrow or empty range (a `from` in the future) is found by
-- the index instead of walking the log in read order and filtering every row.
create index events_occurred_at_idx on outbox.events (occurred_at);
