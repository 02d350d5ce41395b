import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTBOX_VERSION } from '../../src/config/version.ts';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { checkReadiness } from '../../src/observability/health.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

let database: TestDatabase;
let server: ApiServer;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startApiServer({
    db: database.db,
    logger: silentLogger,
    auth: { enabled: false },
    development: true,
    host: '127.0.0.1',
    port: 0,
    readiness: () => checkReadiness({ pool: database.pool, workersRunning: undefined }),
  });
});

afterAll(async () => {
  await server?.close();
  await database?.drop();
});

describe('GET /', () => {
  it('says what the service is and links to GraphiQL, health, readiness, with the version', async () => {
    const response = await fetch(new URL('/', server.url));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/html');
    const html = await response.text();
    expect(html).toContain('transactional outbox');
    expect(html).toContain('href="/graphql">GraphiQL');
    expect(html).toContain('href="/console/">Console');
    expect(html).toContain('href="/healthz"');
    expect(html).toContain('href="/readyz"');
    expect(html).not.toContain('href="/metrics"'); // no metrics given to this server: no dead link
    expect(html).toContain(`Postbox ${POSTBOX_VERSION}`);
    expect(html).not.toMatch(/<script|https?:\/\//);
  });
});
