import { Kind, valueFromASTUntyped } from 'graphql';
import { builder } from '../builder.ts';

const isoDateTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

function parseDateTime(value: unknown): Date {
  if (typeof value === 'string' && isoDateTime.test(value)) {
    const date = new Date(value);
    if (!Number.isNaN(date.getTime())) return date;
  }
  // graphql-js turns this into a GraphQL error on the argument, keeping the message.
  throw new TypeError('DateTime must be an ISO-8601 date-time with a time zone, e.g. 2026-01-31T12:00:00Z');
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
