import type { Config } from './config/config.ts';
import type { ConsumerDefinition } from './consumers/consumer.ts';
import { openDatabase } from './db/connect.ts';
import { migrate } from './db/migrate.ts';
import { type ApiServer, startApiServer } from './graphql/server.ts';
import { createLogger, type Logger } from './logger.ts';
import { type Postbox, startPostbox } from './postbox.ts';
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

/**
 * The composition root: config → database (embedded unless DATABASE_URL) → migrations → engine.
 */
export async function startService(config: Config, logger: Logger = createLogger(config)): Promise<Service> {
  const database = await openDatabase(config, logger);
  let postbox: Postbox | undefined;
  let api: ApiServer | undefined;
  try {
    await migrate(database.pool, { logger });
    if (config.runWorkers) {
      postbox = await startPostbox({
        pool: database.pool,
        connectionString: database.connectionString,
        consumers: serviceConsumers(config),
        events: SHOP_EVENTS,
        concurrency: config.workerConcurrency,
        pollIntervalMs: config.pollIntervalMs,
        logger,
      });
      logger.info({ concurrency: config.workerConcurrency }, 'relay and graphile-worker running');
    }
    if (config.runApi) {
      api = await startApiServer({
        db: database.db,
        connectionString: database.connectionString,
        logger,
        host: config.host,
        port: config.port,
        development: config.nodeEnv === 'development',
      });
      logger.info(`GraphQL API on ${api.url}`);
    }
  } catch (error) {
    await api?.close();
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
        await postbox?.stop();
        await database.close();
      })();
      return stopping;
    },
  };
}

/** Runs the service until SIGINT/SIGTERM, then shuts down in order and exits 0. A second signal forces exit. */
export async function runService(config: Config): Promise<void> {
  const logger = createLogger(config);
  const service = await startService(config, logger);
  await new Promise<void>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(130);
      }
      signalled = true;
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
