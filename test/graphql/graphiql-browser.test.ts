import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiServer, startApiServer } from '../../src/graphql/server.ts';
import { silentLogger } from '../../src/logger.ts';
import { type RunningShop, startShop } from '../shop/shop-fixtures.ts';

const CHROMIUM = '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium)`;
if (missing) console.warn(`SKIPPED graphiql-browser: ${missing}`);

let shop: RunningShop;
let server: ApiServer;
let profile: string;

beforeAll(async () => {
  if (missing) return;
  shop = await startShop();
  server = await startApiServer({
    db: shop.db,
    connectionString: shop.database.url,
    logger: silentLogger,
    auth: { enabled: false },
    development: true,
    host: '127.0.0.1',
    port: 0,
  });
  profile = await fs.mkdtemp(path.join(os.tmpdir(), 'postbox-chromium-'));
});

afterAll(async () => {
  await server?.close();
  await shop?.stop();
  if (profile) await fs.rm(profile, { recursive: true, force: true });
});

describe.skipIf(missing !== undefined)('GraphiQL in a real browser with no network', () => {
  it('loads /graphql from the server alone, shows the editor, runs a query and shows the result', async () => {
    const { chromium } = await import('playwright-core');
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // No name resolves: a CDN URL in the page could not load even if the machine had internet.
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
      ],
    });
    try {
      const page = await context.newPage();
      const origin = new URL(server.url).origin;
      const elsewhere: string[] = [];
      // A fresh profile (launchPersistentContext passes it as --user-data-dir). The network is cut: anything not from this server (or inline: data:, blob:) is refused and recorded.
      await page.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(origin)) return route.continue();
        elsewhere.push(url);
        return route.abort('internetdisconnected');
      });
      const query = '{ products { sku } logHead }';
      await page.goto(`${server.url}?query=${encodeURIComponent(query)}`, { waitUntil: 'load' });
      await page.locator('.graphiql-container').first().waitFor({ timeout: 30_000 });
      await expect
        .poll(() => page.locator('.graphiql-query-editor').first().innerText())
        .toContain('products');
      await page.locator('.graphiql-execute-button').first().click();
      const response = page.locator('.graphiql-response').first();
      // Monaco renders spaces as non-breaking ones: compare with whitespace normalised.
      await expect
        .poll(async () => (await response.innerText()).replace(/\s+/g, ' '), { timeout: 30_000 })
        .toContain('"data": { "products": [], "logHead": null }');
      expect(elsewhere.filter((url) => !url.startsWith('data:') && !url.startsWith('blob:'))).toEqual([]);
    } finally {
      await context.close();
    }
  }, 120_000);
});
