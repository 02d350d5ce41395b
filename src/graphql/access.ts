import type { GraphQLError } from 'graphql';
import { createGraphQLError } from 'graphql-yoga';
import type { Authenticator, AuthResult } from '../auth/authenticate.ts';
import type { Principal } from '../auth/principal.ts';
import type { Logger } from '../logger.ts';
import { RateLimiter } from './rate-limit.ts';

/** Header carrying an API key, as an alternative to `Authorization: Bearer <key>`. */
export const API_KEY_HEADER = 'x-api-key';

/** The request could not be authenticated: HTTP 401, `extensions.code` `UNAUTHENTICATED`. */
export function unauthenticatedError(reason: string): GraphQLError {
  return createGraphQLError(`Unauthenticated: ${reason}`, {
    extensions: {
      code: 'UNAUTHENTICATED',
      http: { status: 401, headers: { 'WWW-Authenticate': 'Bearer realm="postbox"' } },
    },
  });
}

/** The caller lacks a scope the field needs: HTTP 403, `extensions.code` `FORBIDDEN`. */
export function forbiddenError(field: string, scopes: readonly string[]): GraphQLError {
  const needs = scopes.length > 0 ? `scope ${scopes.join(' or ')}` : 'a scope this key does not have';
  return createGraphQLError(`Forbidden: ${field} needs ${needs}`, {
    extensions: { code: 'FORBIDDEN', requiredScopes: [...scopes], http: { status: 403 } },
  });
}

/** The database cannot be reached right now: HTTP 503 with `Retry-After`, `extensions.code` `SERVICE_UNAVAILABLE`. */
export function serviceUnavailableError(): GraphQLError {
  return createGraphQLError('Service unavailable: the database cannot be reached; retry shortly', {
    extensions: {
      code: 'SERVICE_UNAVAILABLE',
      http: { status: 503, headers: { 'Retry-After': String(SERVICE_UNAVAILABLE_RETRY_SECONDS) } },
    },
  });
}

/** `Retry-After` of a 503, seconds. */
const SERVICE_UNAVAILABLE_RETRY_SECONDS = 5;

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down)
  '53300', // too_many_connections
]);

/**
 * True for an error that means "the database is unreachable or restarting" rather than a bug: connection
 * refused or lost, SQLSTATE class 08 (connection exception), server shutdown, pool checkout timeout.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
  if (error instanceof AggregateError && error.errors.some(isDatabaseUnavailable)) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(
    error.message,
  );
}

/** Too many requests: HTTP 429 with `Retry-After`, `extensions.code` `RATE_LIMITED`. */
export function rateLimitedError(perMinute: number, retryAfterSeconds: number): GraphQLError {
  return createGraphQLError(
    `Rate limit exceeded: at most ${perMinute} requests per minute; retry in ${retryAfterSeconds} s`,
    {
      extensions: {
        code: 'RATE_LIMITED',
        retryAfterSeconds,
        http: { status: 429, headers: { 'Retry-After': String(retryAfterSeconds) } },
      },
    },
  );
}

/** How long one re-check of the same credentials answers for every open connection using them, ms. */
const REAUTHENTICATION_SHARE_MS = 1000;

/** Credentials as a request or a WebSocket connection carries them. */
export interface Credentials {
  readonly authorization?: string | null | undefined;
  readonly apiKey?: string | null | undefined;
}

/** Reads `Authorization` and `x-api-key` from request headers. */
export function credentialsFromHeaders(headers: { get(name: string): string | null }): Credentials {
  return { authorization: headers.get('authorization'), apiKey: headers.get(API_KEY_HEADER) };
}

/** Options of {@link createAccessControl}. */
export interface AccessControlOptions {
  readonly authenticator: Authenticator;
  /** Requests per minute per principal (per client address when auth is off); `undefined`: no limit. */
  readonly rateLimitPerMinute: number | undefined;
  readonly logger: Logger;
}

/** Authentication plus rate limiting, shared by the HTTP and WebSocket transports. */
export interface AccessControl {
  /** Whether credentials are required. */
  readonly enabled: boolean;
  /** The per-caller limit, or `undefined` when there is none. */
  readonly rateLimitPerMinute: number | undefined;
  /**
   * Authenticates a request (or a WebSocket connection) and charges it to the caller's rate limit.
   * Failed attempts are charged to the client address, so guessing costs the guesser.
   *
   * @throws GraphQLError `UNAUTHENTICATED` (401), `RATE_LIMITED` (429) or `SERVICE_UNAVAILABLE` (503, the
   *   database cannot be reached to check a key).
   */
  admitRequest(credentials: Credentials, clientAddress: string): Promise<Principal>;
  /**
   * Checks credentials again without charging the rate limit: for every operation on an open WebSocket and
   * for live subscriptions, so that a revoked key or an expired token stops working on open connections.
   * With `shared` (the periodic checks of idle connections), answers for the same credentials are shared
   * for up to a second, so a key's revocation lookup is one query however many of its connections ask;
   * without it (an operation about to run) the check is fresh.
   */
  reauthenticate(credentials: Credentials, options?: { shared?: boolean }): Promise<AuthResult>;
  /**
   * Charges one more operation of an already authenticated caller (each WebSocket operation).
   *
   * @throws GraphQLError `RATE_LIMITED` (429).
   */
  admitOperation(principal: Principal, clientAddress: string): void;
}

/** Builds the {@link AccessControl} of one API. */
export function createAccessControl(options: AccessControlOptions): AccessControl {
  const limiter =
    options.rateLimitPerMinute === undefined
      ? undefined
      : new RateLimiter({ perMinute: options.rateLimitPerMinute });
  const log = options.logger.child({ component: 'access' });
  // Without auth every caller is the same anonymous principal: count per client address instead.
  const keyOf = (principal: Principal, clientAddress: string) =>
    principal.kind === 'anonymous' ? `addr:${clientAddress}` : principal.id;
  const charge = (key: string) => {
    if (!limiter) return;
    const verdict = limiter.take(key);
    if (!verdict.ok) {
      log.info({ rateLimitKey: key, retryAfterSeconds: verdict.retryAfterSeconds }, 'rate limited');
      throw rateLimitedError(limiter.limit, verdict.retryAfterSeconds);
    }
  };
  const recent = new Map<string, { at: number; result: Promise<AuthResult> }>();
  const reauthenticate = (credentials: Credentials, how?: { shared?: boolean }): Promise<AuthResult> => {
    if (!how?.shared) return options.authenticator.authenticate(credentials);
    const key = `${credentials.authorization ?? ''}\n${credentials.apiKey ?? ''}`;
    const now = Date.now();
    const cached = recent.get(key);
    if (cached && now - cached.at < REAUTHENTICATION_SHARE_MS) return cached.result;
    if (recent.size > 10_000) {
      for (const [entry, { at }] of recent) if (now - at >= REAUTHENTICATION_SHARE_MS) recent.delete(entry);
    }
    const result = options.authenticator.authenticate(credentials);
    recent.set(key, { at: now, result });
    // A failed lookup (database down) is not remembered: the next check asks again.
    result.catch(() => recent.delete(key));
    return result;
  };
  return {
    enabled: options.authenticator.enabled,
    rateLimitPerMinute: limiter?.limit,
    reauthenticate,
    async admitRequest(credentials, clientAddress) {
      let result: AuthResult;
      try {
        result = await options.authenticator.authenticate(credentials);
      } catch (error) {
        if (!isDatabaseUnavailable(error)) throw error;
        log.warn({ err: error, clientAddress }, 'authentication: the database cannot be reached');
        throw serviceUnavailableError();
      }
      if (!result.ok) {
        charge(`addr:${clientAddress}`);
        log.info({ clientAddress, reason: result.reason }, 'authentication failed');
        throw unauthenticatedError(result.reason);
      }
      charge(keyOf(result.principal, clientAddress));
      return result.principal;
    },
    admitOperation(principal, clientAddress) {
      charge(keyOf(principal, clientAddress));
    },
  };
}
