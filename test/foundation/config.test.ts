import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { ConfigError } from '../../src/engine/errors.ts';
import { childEnv, cliEntry, runNode } from './processes.ts';

/** The error `loadConfig(env)` throws; fails the test if it does not throw one. */
function configErrorFor(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('gives every setting its documented default when the environment is empty', () => {
    expect(loadConfig({})).toEqual({
      databaseUrl: undefined,
      host: '127.0.0.1',
      port: 4000,
      logLevel: 'info',
      nodeEnv: 'development',
      nodeEnvDefaulted: true,
      dataDir: path.resolve('.postbox'),
      embeddedPgPort: 0,
      poolSize: 20,
      workerConcurrency: 8,
      apiPoolSize: 10,
      apiStatementTimeoutMs: 5000,
      apiExecutionTimeoutMs: 10_000,
      credentialRecheckMs: 5000,
      pollIntervalMs: 2000,
      runWorkers: true,
      runApi: true,
      paymentLimitCents: 1_000_000,
      auth: false,
      authDefaulted: true,
      jwt: {
        hs256Secret: undefined,
        rs256PublicKey: undefined,
        jwksUrl: undefined,
        issuer: undefined,
        audience: undefined,
        maxTokenAgeSeconds: undefined,
      },
      introspection: true,
      rateLimitPerMinute: undefined,
      maxBodyBytes: 1024 * 1024,
      maxSubscriptionsPerConnection: 20,
      // Development (the embedded database) lets destinations reach loopback.
      destinationAddressPolicy: { allowPrivate: false, allow: ['127.0.0.0/8', '::1', 'localhost'] },
    });
  });

  it('destinations reach no private address in production unless POSTBOX_DESTINATIONS_ALLOW says so', () => {
    const url = 'postgres://app:secret@db.internal:5433/shop';
    expect(loadConfig({ DATABASE_URL: url }).destinationAddressPolicy).toEqual({
      allowPrivate: false,
      allow: [],
    });
    expect(
      loadConfig({ DATABASE_URL: url, POSTBOX_DESTINATIONS_ALLOW: 'hooks.internal, 10.1.0.0/16' })
        .destinationAddressPolicy,
    ).toEqual({ allowPrivate: false, allow: ['hooks.internal', '10.1.0.0/16'] });
    expect(
      loadConfig({ DATABASE_URL: url, POSTBOX_DESTINATIONS_ALLOW: 'private' }).destinationAddressPolicy
        .allowPrivate,
    ).toBe(true);
  });

  it('reads and converts the values it is given', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://app:secret@db.internal:5433/shop',
      HOST: '0.0.0.0',
      PORT: '8080',
      LOG_LEVEL: 'debug',
      NODE_ENV: 'production',
      POSTBOX_DATA_DIR: '/var/lib/postbox',
      POSTBOX_PG_PORT: '55000',
      POSTBOX_POOL_SIZE: '40',
      POSTBOX_WORKER_CONCURRENCY: '16',
      POSTBOX_POLL_INTERVAL_MS: '500',
      POSTBOX_WORKERS: 'off',
      POSTBOX_API: 'false',
      PAYMENT_LIMIT_CENTS: '5000',
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgres://app:secret@db.internal:5433/shop',
      host: '0.0.0.0',
      port: 8080,
      logLevel: 'debug',
      nodeEnv: 'production',
      dataDir: '/var/lib/postbox',
      embeddedPgPort: 55000,
      poolSize: 40,
      workerConcurrency: 16,
      pollIntervalMs: 500,
      runWorkers: false,
      runApi: false,
      paymentLimitCents: 5000,
    });
  });

  it('accepts postgresql:// URLs and on/1/true as "on"', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgresql://localhost/db',
      POSTBOX_WORKERS: '1',
      POSTBOX_API: 'on',
    });
    expect(config.databaseUrl).toBe('postgresql://localhost/db');
    expect(config.runWorkers).toBe(true);
    expect(config.runApi).toBe(true);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'not-a-url'],
    ['DATABASE_URL', 'mysql://localhost/db'],
    ['POSTBOX_WORKERS', 'maybe'],
    ['POSTBOX_API', 'yes please'],
    ['POSTBOX_POOL_SIZE', '1'],
  ])('rejects %s=%s with a ConfigError naming the variable', (name, value) => {
    const error = configErrorFor({ [name]: value });
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain(name);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toContain(name);
  });

  it('has no rate limit unless POSTBOX_RATE_LIMIT_PER_MINUTE sets one', () => {
    expect(loadConfig({}).rateLimitPerMinute).toBeUndefined();
    expect(loadConfig({ POSTBOX_RATE_LIMIT_PER_MINUTE: 'off' }).rateLimitPerMinute).toBeUndefined();
    expect(loadConfig({ POSTBOX_RATE_LIMIT_PER_MINUTE: '1200' }).rateLimitPerMinute).toBe(1200);
    expect(configErrorFor({ POSTBOX_RATE_LIMIT_PER_MINUTE: '0' }).message).toContain(
      'POSTBOX_RATE_LIMIT_PER_MINUTE',
    );
  });

  it('names every offending variable at once', () => {
    const error = configErrorFor({ PORT: 'abc', LOG_LEVEL: 'loud', HOST: '127.0.0.1' });
    expect(error.problems).toHaveLength(2);
    expect(error.message).toContain('PORT');
    expect(error.message).toContain('LOG_LEVEL');
    expect(error.message).not.toContain('HOST');
  });

  it('treats an empty string as unset (the default applies)', () => {
    const config = loadConfig({ PORT: '', LOG_LEVEL: '', DATABASE_URL: '', POSTBOX_WORKERS: '' });
    expect(config.port).toBe(4000);
    expect(config.logLevel).toBe('info');
    expect(config.databaseUrl).toBeUndefined();
    expect(config.runWorkers).toBe(true);
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ SOMETHING_ELSE: 'x' }).port).toBe(4000);
  });

  it('returns a frozen object', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.port).toBe(4000);
  });
});

describe('the CLI with a bad environment', () => {
  it('exits non-zero and names the variable on stderr before touching a database', async () => {
    const result = await runNode([cliEntry, 'migrate'], childEnv({ PORT: 'abc' }));
    expect(result.code).not.toBe(0);
    expect(result.code).toBe(78); // EX_CONFIG
    expect(result.stderr).toContain('PORT');
    expect(result.stdout).toBe('');
  });
});

describe('auth defaults', () => {
  const url = 'postgres://u:p@db.example:5432/postbox';
  it('is on with DATABASE_URL, off on the embedded database, and an explicit value always wins', () => {
    expect(loadConfig({ DATABASE_URL: url })).toMatchObject({ auth: true, authDefaulted: true });
    expect(loadConfig({})).toMatchObject({ auth: false, authDefaulted: true });
    expect(loadConfig({ POSTBOX_AUTH: 'on' })).toMatchObject({ auth: true, authDefaulted: false });
    expect(loadConfig({ DATABASE_URL: url, POSTBOX_AUTH: 'off' })).toMatchObject({
      auth: false,
      authDefaulted: false,
    });
  });

  it('turns introspection off in production unless asked for, and refuses a short JWT secret', () => {
    expect(loadConfig({ NODE_ENV: 'production' }).introspection).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production', POSTBOX_INTROSPECTION: 'on' }).introspection).toBe(true);
    expect(loadConfig({}).introspection).toBe(true);
    expect(() => loadConfig({ POSTBOX_JWT_SECRET: 'short' })).toThrow(/POSTBOX_JWT_SECRET/);
  });
});
