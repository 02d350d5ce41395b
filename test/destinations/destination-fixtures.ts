import { z } from 'zod';
import { appendEvents } from '../../src/engine/outbox/append.ts';
import { defineEvent } from '../../src/engine/outbox/event.ts';
import type { TestDatabase } from '../helpers/db.ts';

/**
 * An event type of a test's own (and so a subject, routing key or topic of its own), on the stream type of
 * its name in lower case, with a counter payload `{ n }`.
 */
export function counterEvent(type: string) {
  return defineEvent({ type, streamType: type.toLowerCase(), schema: z.object({ n: z.number().int() }) });
}

/** An event type made by {@link counterEvent}. */
export type CounterEvent = ReturnType<typeof counterEvent>;

/**
 * Appends `perStream` events to each stream, interleaved (n = 1 on every stream, then n = 2, …), in
 * transactions of up to `chunk` events. Returns the event ids in append order.
 */
export async function appendInterleaved(
  db: TestDatabase['db'],
  definition: CounterEvent,
  streams: readonly string[],
  perStream: number,
  chunk = 50,
): Promise<string[]> {
  const events = [];
  for (let n = 1; n <= perStream; n++)
    for (const stream of streams) events.push(definition.create(stream, { n }));
  const ids: string[] = [];
  for (let i = 0; i < events.length; i += chunk) {
    const part = events.slice(i, i + chunk);
    await db.transaction().execute((trx) => appendEvents(trx, part));
    ids.push(...part.map((event) => event.id as string));
  }
  return ids;
}
