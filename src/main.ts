import type pg from 'pg';
import { listApiKeys } from './auth/api-keys.ts';
import { createJwtVerifier, type JwtVerifier } from './auth/jwt.ts';
import type { Config } from './config/config.ts';
import { openDatabase } from './db/connect.ts';
import type { Database, Db } from './db/database.ts';
import { SERVICE_LINES } from './db/migration-lines.ts';
import type { ConsumerDefinition } from './engine/index.ts';
import { createDb, createPool, migrate, type Postbox, startPostbox } from './engine/index.ts';
import { type ApiServer, startApiServer } from './graphql/server.ts';
import { createLogger, type Logger } from './logger.ts';
import { checkReadiness } from './observability/health.ts';
import { createMetrics } from './observability/metrics.ts';
import { shopConsumers } from './shop/shop.consumers.ts';
import { SHOP_EVENTS } from './shop/shop.events.ts';

/** A running service, as returned by {@link startService}. */
export interface Service {
  readonly connectionString: string;
  /** `http://host:port/graphql` when this process serves the API. */
  readonly apiUrl: string | undefined;
  /**
   * Stops in order: API (subscriptions end), workers (in-flight jobs finish), pool, embedded Postgres.
   * Idempotent.
   */
  stop(): Promise<void>;
}

/** Consumers the service runs: the shop's order flow. */
export function serviceConsumers(config: Pick<Config, 'paymentLimitCents'>): ConsumerDefinition[] {
  return shopConsumers({ paymentLimitCents: config.paymentLimitCents });
}

/** The JWT verifier the configuration asks for, if any key source is set. */
async function jwtVerifierFor(config: Pick<Config, 'jwt'>): Promise<JwtVerifier | undefined> {
  const { hs256Secret, rs256PublicKey, jwksUrl, issuer, audience, maxTokenAgeSeconds } = config.jwt;
  if (!hs256Secret && !rs256PublicKey && !jwksUrl) return undefined;
  return createJwtVerifier({
    ...(hs256Secret ? { hs256Secret } : {}),
    ...(rs256PublicKey ? { rs256PublicKey } : {}),
    ...(jwksUrl ? { jwksUrl } : {}),
    ...(issuer ? { issuer } : {}),
    ...(audience ? { audience } : {}),
    ...(maxTokenAgeSeconds !== undefined ? { maxTokenAgeSeconds } : {}),
  });
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * Says loudly when the API runs without authentication, and when it requires credentials nobody can have
 * (no API key and no JWT key configured).
 */
async function warnAboutAuth(
  config: Config,
  db: Db,
  jwt: JwtVerifier | undefined,
  logger: Logger,
): Promise<void> {
  if (config.auth) {
    if (!jwt && !(await listApiKeys(db)).some((key) => key.revokedAt === null)) {
      logger.warn(
        'API authentication is on but no API key exists and no JWT key is configured: every request will get ' +
          'a 401. Create a key with `postbox keys create --scopes …`.',
      );
    }
    return;
  }
  const why = config.authDefaulted
    ? 'the default on the embedded database; set POSTBOX_AUTH=on to require API keys'
    : 'POSTBOX_AUTH=off';
  const exposure = LOOPBACK.has(config.host)
    ? `only reachable from this machine (HOST=${config.host})`
    : `reachable by anyone who can reach ${config.host}:${config.port}`;
  logger.warn(`API authentication is OFF (${why}): every caller has every scope, ${exposure}`);
}

/**
 * The composition root: config → database (embedded unless DATABASE_URL) → migrations → engine → API.
 * Metrics are fed by the engine's hooks and the API's operations, and served with the health routes on the
 * API's port.
 */
export async function startService(config: Config, logger: Logger = createLogger(config)): Promise<Service> {
  const database = await openDatabase(config, logger);
  let postbox: Postbox | undefined;
  let api: ApiServer | undefined;
  let apiPool: pg.Pool | undefined;
  try {
    await migrate({ pool: database.pool, lines: SERVICE_LINES, logger });
    const metrics = createMetrics(database.db);
    if (config.runWorkers) {
      postbox = await startPostbox({
        pool: database.pool,
        consumers: serviceConsumers(config),
        events: SHOP_EVENTS,
        concurrency: config.workerConcurrency,
        pollIntervalMs: config.pollIntervalMs,
        destinationAddressPolicy: config.destinationAddressPolicy,
        logger,
      });
      postbox.events.on('delivery', metrics.onDelivery);
      postbox.events.on('destinationAttempt', metrics.onDestinationAttempt);
      postbox.events.on('relay', ({ kind, scheduled }) => metrics.onRelayActivity(kind, scheduled));
      logger.info({ concurrency: config.workerConcurrency }, 'relay and graphile-worker running');
    }
    if (config.runApi) {
      if (config.nodeEnv === 'development' && config.databaseUrl !== undefined) {
        logger.warn(
          `NODE_ENV=${config.nodeEnv} with a DATABASE_URL: introspection${config.introspection ? ', GraphiQL' : ''} ` +
            'and error details are on; set NODE_ENV=production for a deployment',
        );
      }
      // The API's own pool: its queries are bounded by statement_timeout, and however many requests pile up
      // they wait for these connections, never for the relay's and consumers'.
      apiPool = createPool({
        connectionString: database.connectionString,
        max: config.apiPoolSize,
        applicationName: 'postbox-api',
        options: `-c statement_timeout=${config.apiStatementTimeoutMs}`,
        logger,
      });
      const apiDb = createDb<Database>(apiPool);
      const jwt = await jwtVerifierFor(config);
      await warnAboutAuth(config, database.db, jwt, logger);
      const workers = postbox;
      api = await startApiServer({
        db: apiDb,
        connectionString: database.connectionString,
        notifier: postbox?.notifier,
        logger,
        host: config.host,
        port: config.port,
        auth: { enabled: config.auth, jwt },
        development: config.nodeEnv === 'development',
        introspection: config.introspection,
        maxBodyBytes: config.maxBodyBytes,
        rateLimitPerMinute: config.rateLimitPerMinute,
        maxSubscriptionsPerConnection: config.maxSubscriptionsPerConnection,
        executionTimeoutMs: config.apiExecutionTimeoutMs,
        credentialRecheckMs: config.credentialRecheckMs,
        destinationAddressPolicy: config.destinationAddressPolicy,
        metrics,
        readiness: () =>
          checkReadiness({
            pool: database.pool,
            workersRunning: workers ? () => workers.isRunning() : undefined,
          }),
      });
      logger.info(
        {
          auth: config.auth,
          introspection: config.introspection,
          rateLimitPerMinute: config.rateLimitPerMinute,
        },
        `GraphQL API on ${api.url} (health: /healthz, /readyz; metrics: /metrics)`,
      );
    }
  } catch (error) {
    await api?.close();
    await apiPool?.end();
    await postbox?.stop();
    await database.close();
    throw error;
  }
  const where = database.embedded
    ? `embedded postgres on 127.0.0.1:${database.embedded.port} (data in ${config.dataDir})`
    : 'postgres from DATABASE_URL';
  logger.info(`postbox is up: ${where}`);
  let stopping: Promise<void> | undefined;
  return {
    connectionString: database.connectionString,
    apiUrl: api?.url,
    stop() {
      stopping ??= (async () => {
        await api?.close();
        await apiPool?.end();
        await postbox?.stop();
        await database.close();
      })();
      return stopping;
    },
  };
}

/** Signals this close to the first one are the same signal delivered twice (see {@link runService}). */
const DUPLICATE_SIGNAL_MS = 500;

/** Runs the service until SIGINT/SIGTERM, then shuts down in order and exits 0. A second signal forces exit. */
export async function runService(config: Config): Promise<void> {
  const logger = createLogger(config);
  const service = await startService(config, logger);
  await new Promise<void>((resolve) => {
    let signalledAt: number | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      // Ctrl-C under `npm start` delivers SIGINT twice at once: the terminal signals the whole process
      // group, and npm forwards the one it got to its child. Only a signal a moment later is a second one.
      if (signalledAt !== undefined && Date.now() - signalledAt < DUPLICATE_SIGNAL_MS) return;
      if (signalledAt !== undefined) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(130);
      }
      signalledAt = Date.now();
      logger.info({ signal }, 'shutting down: finishing in-flight work');
      service.stop().then(resolve, (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exitCode = 1;
        resolve();
      });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  logger.info('stopped');
}
