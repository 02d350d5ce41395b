import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { createDb } from '../../src/engine/db/database.ts';
import { createPool } from '../../src/engine/db/pool.ts';
import { silentLogger } from '../../src/logger.ts';
import { createTestApi, gql } from '../graphql/graphql-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

describe('defaults outside development', () => {
  it('with a DATABASE_URL and no NODE_ENV, production behaviour: no introspection, no GraphiQL', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://postbox@db.internal/postbox' });
    expect(config.nodeEnv).toBe('production');
    expect(config.introspection).toBe(false);
    expect(config.auth).toBe(true);
  });

  it('the embedded database (no DATABASE_URL) stays development; an explicit NODE_ENV wins', () => {
    expect(loadConfig({}).nodeEnv).toBe('development');
    expect(loadConfig({ DATABASE_URL: 'postgres://p@h/p', NODE_ENV: 'development' }).nodeEnv).toBe(
      'development',
    );
  });
});

describe('no stack traces for clients, even in development', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('an unexpected error in development shows its message, never its stack or file paths', async () => {
    const pool = createPool({ connectionString: database.url, logger: silentLogger, max: 1 });
    await pool.end();
    const api = createTestApi(createDb(pool), undefined, { development: true });
    try {
      const response = await gql(api, '{ products { sku } }');
      const text = JSON.stringify(response.body);
      expect(response.body.errors?.length).toBeGreaterThan(0);
      expect(text).not.toMatch(/stack|\/work\/|node_modules|\.ts:\d+/);
    } finally {
      await api.close();
    }
  });
});
