/**
 * `outbox.append_events(...)` (migrations/engine/000004): the one implementation of an append. The engine
 * calls it positionally with every argument, so the statement text is fixed and pg prepares it once per
 * connection under {@link APPEND_EVENTS_NAME}; the function's own statements are planned once per session
 * by PL/pgSQL. That keeps an append cheap on any pool, the application's included.
 */
export const APPEND_EVENTS_SQL =
  'select event_id::text, position::text, stream_version, log_xid::text, duplicate from outbox.append_events(' +
  '$1::text, $2::text, $3::text[], $4::jsonb[], $5::jsonb[], $6::int[], $7::bigint, $8::uuid[], ' +
  '$9::timestamptz[], $10::boolean, $11::boolean)';

/**
 * Sent without parameters (the simple protocol): true when no BEGIN preceded it, since an implicit
 * transaction starts with the statement itself. Over the extended protocol the two times differ.
 */
export const OUTSIDE_TRANSACTION_SQL = 'select now() = statement_timestamp() as idle';

/** Name of the prepared statement on a `pg` client. */
export const APPEND_EVENTS_NAME = 'postbox_append_events_v2';

/** One row returned by the statement: one per event, in input order. */
export interface AppendEventsRow {
  event_id: string;
  position: string;
  stream_version: number;
  log_xid: string;
  duplicate: boolean;
}

/** The statement's parameters for one stream's events, in order. */
export function appendEventsParameters(input: {
  readonly streamType: string;
  readonly streamId: string;
  readonly types: readonly string[];
  readonly payloads: readonly string[];
  readonly metadata: readonly string[];
  readonly schemaVersions: readonly number[];
  readonly expectedVersion: number | undefined;
  readonly ids: readonly string[];
  readonly occurredAt: readonly (Date | null)[];
  readonly requireTransaction: boolean;
  /** Every id was generated just now (none chosen by the caller): skip the duplicate look-up. */
  readonly idsAreNew: boolean;
}): unknown[] {
  return [
    input.streamType,
    input.streamId,
    input.types,
    input.payloads,
    input.metadata,
    input.schemaVersions,
    input.expectedVersion ?? null,
    input.ids,
    input.occurredAt,
    input.requireTransaction,
    input.idsAreNew,
  ];
}
