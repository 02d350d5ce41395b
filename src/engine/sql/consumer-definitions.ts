import { createHash } from 'node:crypto';

/** The part of a consumer's definition that decides what it is delivered. */
export interface DefinitionTypes {
  readonly name: string;
  readonly eventTypes: readonly string[];
  readonly streamTypes: readonly string[] | undefined;
}

/** Runs one parameterised statement (a `pg` client's `query`, or a Kysely `CompiledQuery.raw`). */
export type RunStatement = (text: string, values: unknown[]) => Promise<unknown>;

/** A stable digest of a definition's event and stream types (order does not matter). */
export function definitionDigest(definition: DefinitionTypes): string {
  const text = JSON.stringify([
    [...definition.eventTypes].sort(),
    definition.streamTypes ? [...definition.streamTypes].sort() : null,
  ]);
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** Records the definitions run by this process as seen now (inserting new ones). */
export async function touchDefinitions(
  run: RunStatement,
  definitions: readonly DefinitionTypes[],
): Promise<void> {
  if (definitions.length === 0) return;
  const rows = definitions.map((definition) => ({
    consumer: definition.name,
    definition: definitionDigest(definition),
    event_types: [...definition.eventTypes],
    stream_types: definition.streamTypes ? [...definition.streamTypes] : null,
  }));
  await run(
    `insert into outbox.consumer_definitions as d (consumer, definition, event_types, stream_types)
     select x.consumer, x.definition, x.event_types, x.stream_types
     from jsonb_to_recordset($1::jsonb) as x(consumer text, definition text, event_types text[], stream_types text[])
     on conflict (consumer, definition) do update set last_seen_at = now()`,
    [JSON.stringify(rows)],
  );
}

/**
 * Sets each consumer's stored event and stream types to the union of its live definitions (seen within
 * `leaseMs`): what the relay schedules and drains read. A consumer with no live definition keeps what it
 * had. Writes only rows that change. `consumers`: only these (default all).
 */
export async function storeLiveDefinitions(
  run: RunStatement,
  leaseMs: number,
  consumers?: readonly string[],
): Promise<void> {
  await run(
    `update outbox.consumers c
     set event_types = u.event_types, stream_types = u.stream_types, updated_at = now()
     from (select d.consumer,
                  array_agg(distinct t order by t) as event_types,
                  case when bool_or(d.stream_types is null) then null
                       else array_agg(distinct s order by s) filter (where s is not null) end as stream_types
           from outbox.consumer_definitions d
           cross join lateral unnest(d.event_types) t
           left join lateral unnest(d.stream_types) s on true
           where d.last_seen_at > now() - make_interval(secs => $1::float8 / 1000)
             and ($2::text[] is null or d.consumer = any($2::text[]))
           group by d.consumer) u
     where c.name = u.consumer
       and (c.event_types, c.stream_types) is distinct from (u.event_types, u.stream_types)`,
    [leaseMs, consumers ? [...consumers] : null],
  );
}
