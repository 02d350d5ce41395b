import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConsoleRoutes } from '../../src/graphql/console-assets.ts';

// The console's files as the server hands them out: compressed, revalidated by ETag, under a strict CSP,
// and nothing outside the console's own files and the three browser packages it uses.

let server: Server;
let base: string;

beforeAll(async () => {
  const routes = createConsoleRoutes({ authEnabled: true });
  server = createServer((request, response) => {
    if (!routes(request, response)) response.writeHead(418).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('console assets', () => {
  it('serves the page with a CSP that allows only its own files and its import map', async () => {
    const redirect = await fetch(`${base}/console`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/console/');
    const page = await fetch(`${base}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).toContain("connect-src 'self'");
    const html = await page.text();
    expect(html).toContain('<script type="importmap">');
    expect(html).not.toMatch(/https?:\/\//);
    expect(await (await fetch(`${base}/console/config.json`)).json()).toEqual({ auth: true });
  });

  it('compresses with brotli or gzip as accepted, and answers 304 to a matching ETag', async () => {
    // Node's fetch always decompresses; ask with explicit headers and read the raw length.
    const raw = await fetch(`${base}/console/vendor/preact.mjs`, {
      headers: { 'accept-encoding': 'identity' },
    });
    const plain = Buffer.from(await raw.arrayBuffer());
    expect(raw.headers.get('content-encoding')).toBeNull();
    expect(raw.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const { request } = await import('node:http');
    const brotli = await new Promise<{ encoding?: string; body: Buffer }>((resolve, reject) => {
      request(
        `${base}/console/vendor/preact.mjs`,
        { headers: { 'accept-encoding': 'gzip, br' } },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({ encoding: response.headers['content-encoding'], body: Buffer.concat(chunks) }),
          );
        },
      )
        .on('error', reject)
        .end();
    });
    expect(brotli.encoding).toBe('br');
    expect(brotli.body.length).toBeLessThan(plain.length / 2);
    expect(brotliDecompressSync(brotli.body).equals(plain)).toBe(true);
    const etag = raw.headers.get('etag') ?? '';
    expect(etag).toMatch(/^".+"$/);
    const again = await fetch(`${base}/console/vendor/preact.mjs`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
  });

  it('serves nothing else: unknown names and paths out of the folder are 404, writes are 405', async () => {
    const { request } = await import('node:http');
    // Raw paths (a URL string would have its dots normalised away before sending).
    const statusOf = (path: string) =>
      new Promise<number | undefined>((resolve, reject) => {
        const { hostname, port } = new URL(base);
        request({ hostname, port, path }, (response) => {
          response.resume();
          resolve(response.statusCode);
        })
          .on('error', reject)
          .end();
      });
    for (const path of [
      '/console/nope.js',
      '/console/../package.json',
      '/console/%2e%2e/package.json',
      '/console/%E0',
      '/console/vendor/../../package.json',
    ])
      expect(await statusOf(path), path).toBe(404);
    expect((await fetch(`${base}/console/`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${base}/consoles`)).status).toBe(418); // not the console's
  });
});
