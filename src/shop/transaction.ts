import type { Kysely } from 'kysely';
import type { z } from 'zod';
import { ValidationError } from '../engine/index.ts';
import type { ShopDatabase } from './shop.tables.ts';

/** SQLSTATEs after which the whole transaction may simply be run again. */
const RETRYABLE = new Set(['40P01', '40001']); // deadlock_detected, serialization_failure

/**
 * Runs `work` in a transaction, running it again (up to `attempts` times) when Postgres aborted it for a
 * deadlock or a serialization failure — both mean "nothing was written, try again".
 */
export async function inTransaction<T>(
  db: Kysely<ShopDatabase>,
  work: (trx: Kysely<ShopDatabase>) => Promise<T>,
  attempts = 3,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(work);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (attempt >= attempts || !code || !RETRYABLE.has(code)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20 * attempt));
    }
  }
}

/** Validates input with a zod schema; the first problem becomes a {@link ValidationError} naming its field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = (issue?.path ?? []).map(String).join('.') || undefined;
  const message = issue?.message ?? 'invalid input';
  throw new ValidationError(field ? `${field}: ${message}` : message, field);
}
