import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../engine/index.ts';

const booleanFlag = z
  .enum(['on', 'off', 'true', 'false', '1', '0'])
  .transform((value) => value === 'on' || value === 'true' || value === '1');

const port = z.coerce.number().int().min(0).max(65_535);

/**
 * Every environment variable Postbox reads, with its default. This schema is the single source of truth:
 * nothing else in the code base touches `process.env`.
 */
const envSchema = z.object({
  /** Postgres connection string. Unset: an embedded Postgres is started under `POSTBOX_DATA_DIR`. */
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' })
    // Refinements run even when the URL check failed: only judge the host of a URL that parses.
    .refine((url) => !URL.canParse(url) || new URL(url).hostname !== '', {
      error:
        'has no host: use postgres://user:password@host:5432/database (or unset it for the embedded database)',
    })
    .optional(),
  /** Interface the HTTP API binds to. Default `127.0.0.1`. */
  HOST: z.string().min(1).default('127.0.0.1'),
  /** HTTP API port. Default `4000`; `0` picks a free port. */
  PORT: port.default(4000),
  /** pino level. Default `info`. */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * `production` turns off development conveniences (introspection, GraphiQL, error messages, field
   * suggestions). Default: `production` when `DATABASE_URL` is set, `development` on the embedded database.
   */
  NODE_ENV: z.enum(['development', 'production', 'test']).optional(),
  /** Where the embedded Postgres keeps its data (kept across restarts). Default `./.postbox`. */
  POSTBOX_DATA_DIR: z.string().min(1).default('./.postbox'),
  /** Port of the embedded Postgres on 127.0.0.1. Default `0`: a free port is picked at each start. */
  POSTBOX_PG_PORT: port.default(0),
  /** Size of the service's pg pool. Default `20`. */
  POSTBOX_POOL_SIZE: z.coerce.number().int().min(2).max(500).default(20),
  /**
   * Size of the API's own pg pool, apart from the relay's and consumers' pool (`POSTBOX_POOL_SIZE`), so that
   * API traffic cannot starve the workers of connections. Default `10`.
   */
  POSTBOX_API_POOL_SIZE: z.coerce.number().int().min(2).max(500).default(10),
  /** `statement_timeout` of the API's connections, ms. Default `5000`. */
  POSTBOX_API_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(5000),
  /** Longest a GraphQL query or mutation may run before it is answered `DEADLINE_EXCEEDED`, ms. Default `10000`. */
  POSTBOX_API_EXECUTION_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(10_000),
  /** How often open connections and subscriptions re-check their credentials, ms. Default `5000`. */
  POSTBOX_CREDENTIAL_RECHECK_MS: z.coerce.number().int().min(100).max(600_000).default(5000),
  /** graphile-worker concurrency: jobs (partition drains) run at once by this process. Default `8`. */
  POSTBOX_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(200).default(8),
  /** How often the relay polls for work it may have missed a wake-up for, in ms. Default `2000`. */
  POSTBOX_POLL_INTERVAL_MS: z.coerce.number().int().min(50).max(600_000).default(2000),
  /** Run the relay and the consumers in this process. Default `on`. */
  POSTBOX_WORKERS: booleanFlag.default(true),
  /** Serve the GraphQL API in this process. Default `on`. */
  POSTBOX_API: booleanFlag.default(true),
  /** Orders whose total is above this many cents are declined by the simulated payment provider. Default `1000000`. */
  PAYMENT_LIMIT_CENTS: z.coerce.number().int().min(0).default(1_000_000),
  /** Require API keys / JWTs. Default: on, except on the embedded database (local development). */
  POSTBOX_AUTH: booleanFlag.optional(),
  /** HS256 secret for JWT bearer tokens (at least 32 characters). */
  POSTBOX_JWT_SECRET: z.string().min(32).optional(),
  /** PEM (SPKI) public key for RS256 JWT bearer tokens. */
  POSTBOX_JWT_PUBLIC_KEY: z.string().includes('BEGIN PUBLIC KEY').optional(),
  /** JWKS URL for RS256 JWT bearer tokens. */
  POSTBOX_JWT_JWKS_URL: z.url({ protocol: /^https?$/ }).optional(),
  /** Required `iss` of JWTs. */
  POSTBOX_JWT_ISSUER: z.string().min(1).optional(),
  /** Required `aud` of JWTs. */
  POSTBOX_JWT_AUDIENCE: z.string().min(1).optional(),
  /** Oldest accepted JWT by its `iat`, seconds (tokens without `iat` are then refused). Default: unset (only `exp`). */
  POSTBOX_JWT_MAX_AGE_SECONDS: z.coerce.number().int().min(1).optional(),
  /** Introspection and GraphiQL in production. Default off in production, on otherwise. */
  POSTBOX_INTROSPECTION: booleanFlag.optional(),
  /**
   * Requests per minute per API key / token subject (or per client address when auth is off), or `off`.
   * Default `off`: a service-to-service API must not throttle its one backend caller.
   */
  POSTBOX_RATE_LIMIT_PER_MINUTE: z
    .union([z.literal('off'), z.coerce.number().int().min(1).max(1_000_000)])
    .default('off'),
  /** Largest accepted request body, bytes. Default `1048576` (1 MiB). */
  POSTBOX_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024),
  /** Subscriptions one WebSocket connection may hold. Default `20`. */
  POSTBOX_MAX_SUBSCRIPTIONS_PER_CONNECTION: z.coerce.number().int().min(1).max(1000).default(20),
  /**
   * Private addresses destinations (webhooks) may target, comma-separated: host names and CIDRs (e.g.
   * `hooks.internal,10.1.0.0/16`), or `private` for every address. Default: none in production; loopback
   * (`127.0.0.0/8,::1,localhost`) in development. Public addresses are always allowed.
   */
  POSTBOX_DESTINATIONS_ALLOW: z
    .string()
    .transform((value) =>
      value
        .split(',')
        .map((entry) => entry.trim())
        .filter(Boolean),
    )
    .optional(),
});

/** What development (the embedded database) lets destinations reach out of the box. */
const DEVELOPMENT_DESTINATIONS_ALLOW = ['127.0.0.0/8', '::1', 'localhost'];

/** The validated, frozen configuration of one Postbox process. */
export interface Config {
  /** Postgres connection string; `undefined` means "start the embedded Postgres". */
  readonly databaseUrl: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly nodeEnv: 'development' | 'production' | 'test';
  /** True when `NODE_ENV` was not set and `nodeEnv` is the default (for a start-up note). */
  readonly nodeEnvDefaulted: boolean;
  /** Absolute path of the embedded Postgres data directory's parent. */
  readonly dataDir: string;
  readonly embeddedPgPort: number;
  readonly poolSize: number;
  readonly workerConcurrency: number;
  readonly apiPoolSize: number;
  readonly apiStatementTimeoutMs: number;
  readonly apiExecutionTimeoutMs: number;
  readonly credentialRecheckMs: number;
  readonly pollIntervalMs: number;
  readonly runWorkers: boolean;
  readonly runApi: boolean;
  readonly paymentLimitCents: number;
  /** Whether API requests must authenticate (resolved: explicit value, else on unless embedded). */
  readonly auth: boolean;
  /** True when `POSTBOX_AUTH` was not set and `auth` is the default (for a start-up warning). */
  readonly authDefaulted: boolean;
  readonly jwt: {
    readonly hs256Secret: string | undefined;
    readonly rs256PublicKey: string | undefined;
    readonly jwksUrl: string | undefined;
    readonly issuer: string | undefined;
    readonly audience: string | undefined;
    readonly maxTokenAgeSeconds: number | undefined;
  };
  /** Introspection and GraphiQL enabled. */
  readonly introspection: boolean;
  /** Requests per minute per caller; `undefined`: no rate limit (the default). */
  readonly rateLimitPerMinute: number | undefined;
  readonly maxBodyBytes: number;
  readonly maxSubscriptionsPerConnection: number;
  /** The destinations' SSRF guard (`POSTBOX_DESTINATIONS_ALLOW`). */
  readonly destinationAddressPolicy: { readonly allowPrivate: boolean; readonly allow: readonly string[] };
}

/**
 * Reads and validates the environment once. A bad value throws a {@link ConfigError} whose message names
 * every offending variable, so start-up stops with something a person can act on.
 *
 * @param env - the environment to read; defaults to `process.env` (tests pass their own object).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings are treated as unset: `FOO= npm start` should mean "default", not "invalid".
  const cleaned = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${issue.path.join('.') || '(env)'}: ${issue.message}`,
    );
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`, problems);
  }
  const e = parsed.data;
  // A real database means a deployment: development conveniences must be asked for, not defaulted to.
  const nodeEnv = e.NODE_ENV ?? (e.DATABASE_URL !== undefined ? 'production' : 'development');
  return Object.freeze({
    databaseUrl: e.DATABASE_URL,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    nodeEnv,
    nodeEnvDefaulted: e.NODE_ENV === undefined,
    dataDir: path.resolve(e.POSTBOX_DATA_DIR),
    embeddedPgPort: e.POSTBOX_PG_PORT,
    poolSize: e.POSTBOX_POOL_SIZE,
    workerConcurrency: e.POSTBOX_WORKER_CONCURRENCY,
    apiPoolSize: e.POSTBOX_API_POOL_SIZE,
    apiStatementTimeoutMs: e.POSTBOX_API_STATEMENT_TIMEOUT_MS,
    apiExecutionTimeoutMs: e.POSTBOX_API_EXECUTION_TIMEOUT_MS,
    credentialRecheckMs: e.POSTBOX_CREDENTIAL_RECHECK_MS,
    pollIntervalMs: e.POSTBOX_POLL_INTERVAL_MS,
    runWorkers: e.POSTBOX_WORKERS,
    runApi: e.POSTBOX_API,
    paymentLimitCents: e.PAYMENT_LIMIT_CENTS,
    // Local development on the embedded database defaults to no auth; anything else defaults to auth.
    auth: e.POSTBOX_AUTH ?? e.DATABASE_URL !== undefined,
    authDefaulted: e.POSTBOX_AUTH === undefined,
    jwt: Object.freeze({
      hs256Secret: e.POSTBOX_JWT_SECRET,
      rs256PublicKey: e.POSTBOX_JWT_PUBLIC_KEY,
      jwksUrl: e.POSTBOX_JWT_JWKS_URL,
      issuer: e.POSTBOX_JWT_ISSUER,
      audience: e.POSTBOX_JWT_AUDIENCE,
      maxTokenAgeSeconds: e.POSTBOX_JWT_MAX_AGE_SECONDS,
    }),
    introspection: e.POSTBOX_INTROSPECTION ?? nodeEnv !== 'production',
    rateLimitPerMinute:
      e.POSTBOX_RATE_LIMIT_PER_MINUTE === 'off' ? undefined : e.POSTBOX_RATE_LIMIT_PER_MINUTE,
    maxBodyBytes: e.POSTBOX_MAX_BODY_BYTES,
    maxSubscriptionsPerConnection: e.POSTBOX_MAX_SUBSCRIPTIONS_PER_CONNECTION,
    destinationAddressPolicy: Object.freeze({
      allowPrivate: e.POSTBOX_DESTINATIONS_ALLOW?.includes('private') ?? false,
      allow: Object.freeze(
        (
          e.POSTBOX_DESTINATIONS_ALLOW ?? (nodeEnv === 'production' ? [] : DEVELOPMENT_DESTINATIONS_ALLOW)
        ).filter((entry) => entry !== 'private'),
      ),
    }),
  });
}
