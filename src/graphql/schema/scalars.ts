import { Kind, valueFromASTUntyped } from 'graphql';
import { createGraphQLError } from 'graphql-yoga';
import { builder } from '../builder.ts';

const isoDateTime =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):(\d{2}))$/;

/** True when every field of the date-time exists: no 30 February, no hour 24 (Date would roll them over). */
function fieldsInRange(match: RegExpExecArray): boolean {
  const [year, month, day, hour, minute, second, offsetHours, offsetMinutes] = match
    .slice(1)
    .map((part) => (part === undefined ? 0 : Number(part))) as number[] as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return (
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= daysInMonth &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 59 &&
    offsetHours <= 23 &&
    offsetMinutes <= 59
  );
}

function parseDateTime(value: unknown): Date {
  const match = typeof value === 'string' ? isoDateTime.exec(value) : null;
  if (match && fieldsInRange(match)) {
    const date = new Date(value as string);
    if (!Number.isNaN(date.getTime())) return date;
  }
  // A GraphQL error (not a TypeError): graphql-js keeps it as the cause of the argument's or variable's
  // error, and error masking lets it through instead of answering "Unexpected error.".
  throw createGraphQLError(
    'DateTime must be an ISO-8601 date-time with a time zone, e.g. 2026-01-31T12:00:00Z',
    { extensions: { code: 'BAD_USER_INPUT' } },
  );
}

builder.scalarType('DateTime', {
  description:
    'An instant, as an ISO-8601 string with a time zone (UTC on output), e.g. `2026-01-31T12:00:00.000Z`.',
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(value).toISOString()),
  parseValue: parseDateTime,
  parseLiteral: (ast) => parseDateTime(ast.kind === Kind.STRING ? ast.value : undefined),
});

builder.scalarType('JSON', {
  description: 'Any JSON value (event payloads and metadata).',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (ast) => valueFromASTUntyped(ast),
});
