import { createGraphQLError, maskError } from 'graphql-yoga';
import { PostboxError, ValidationError } from '../engine/index.ts';
import { isDatabaseUnavailable, serviceUnavailableError } from './access.ts';

/**
 * Duck-typed `instanceof GraphQLError`: graphql-js can be loaded twice (its ESM and CommonJS builds, e.g.
 * under vitest), and an error from one build is not an instance of the other's class.
 */
export function isGraphQLError(error: unknown): error is Error & {
  originalError?: unknown;
  nodes?: ReadonlyArray<never>;
  path?: ReadonlyArray<string | number>;
} {
  return error instanceof Error && error.name === 'GraphQLError';
}

/** Failures worth telling the client as they are (codes of {@link PostboxError}s); anything else is masked. */
const EXPOSED_CODES = new Set([
  'VALIDATION_FAILED',
  'NOT_FOUND',
  'ILLEGAL_STATE',
  'CONCURRENCY_CONFLICT',
  'CONFLICT',
]);

function isExposed(error: unknown): error is PostboxError {
  return error instanceof PostboxError && EXPOSED_CODES.has(error.code);
}

/**
 * The cause of an error the client will only see masked (a bug, a lost database…), or undefined when the
 * error is meant for the client (a GraphQL error of our own, an expected {@link PostboxError}).
 */
export function unexpectedCause(error: unknown): unknown {
  const original = isGraphQLError(error) ? error.originalError : error;
  if (original === undefined || isGraphQLError(original) || isExposed(original)) return undefined;
  return original;
}

/**
 * yoga's `maskError`: expected failures keep their message and `code` (plus `field` for validation);
 * GraphQL errors of our own (401/403/429, limits) pass as they are; an unreachable database becomes
 * `SERVICE_UNAVAILABLE` (HTTP 503, no detail); anything else becomes
 * "Unexpected error." (with details only in development).
 */
export function maskPostboxError(error: unknown, message: string, isDev?: boolean): Error {
  const original = isGraphQLError(error) ? error.originalError : error;
  // An outage is not a bug: the client learns to retry (503), not where the database lives.
  if (isDatabaseUnavailable(original)) {
    const unavailable = serviceUnavailableError();
    return createGraphQLError(unavailable.message, {
      ...(isGraphQLError(error) ? { nodes: error.nodes, path: error.path } : {}),
      extensions: unavailable.extensions,
    });
  }
  if (isExposed(original)) {
    const extensions: Record<string, unknown> = { code: original.code };
    if (original instanceof ValidationError && original.field) extensions.field = original.field;
    return createGraphQLError(original.message, {
      ...(isGraphQLError(error) ? { nodes: error.nodes, path: error.path } : {}),
      extensions,
    });
  }
  const masked = maskError(error, message, isDev);
  // yoga's development mode adds the cause's stack (absolute paths of the server); the message is enough
  // for a developer, and the stack is in the log.
  if (isDev && isGraphQLError(masked)) {
    const extensions = (masked as { extensions?: Record<string, unknown> }).extensions ?? {};
    const cause = extensions.originalError as { message?: unknown } | undefined;
    if (cause && typeof cause === 'object') {
      return createGraphQLError(masked.message, {
        ...(masked.nodes ? { nodes: masked.nodes } : {}),
        ...(masked.path ? { path: masked.path } : {}),
        extensions: {
          ...extensions,
          originalError: { message: typeof cause.message === 'string' ? cause.message : String(cause) },
        },
      });
    }
  }
  return masked;
}
