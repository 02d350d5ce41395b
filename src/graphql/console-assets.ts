import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync, constants as zlib } from 'node:zlib';

/** Where the console is served. */
export const CONSOLE_PATH = '/console';

/**
 * The console's own files: the top-level `console/` folder of the package, two levels above this module
 * both in a checkout (`src/graphql/`) and in the installed package (`dist/graphql/`).
 */
export const CONSOLE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../console');

/** Browser modules taken from installed packages: URL under `/console/vendor/` → package and file. */
const VENDOR_FILES: Record<string, { pkg: string; file: string }> = {
  'preact.mjs': { pkg: 'preact', file: 'dist/preact.mjs' },
  'hooks.mjs': { pkg: 'preact', file: 'hooks/dist/hooks.mjs' },
  'htm.mjs': { pkg: 'htm', file: 'dist/htm.mjs' },
  'uPlot.esm.js': { pkg: 'uplot', file: 'dist/uPlot.esm.js' },
  'uPlot.min.css': { pkg: 'uplot', file: 'dist/uPlot.min.css' },
};

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset {
  readonly type: string;
  readonly raw: Buffer;
  readonly gzip: Buffer;
  readonly br: Buffer;
  readonly etag: string;
}

/** The folder of an installed package (found from its entry point: some packages do not export package.json). */
function packageDir(pkg: string): string {
  const require = createRequire(import.meta.url);
  let dir = path.dirname(require.resolve(pkg));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === pkg) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the folder of package ${pkg}`);
    dir = parent;
  }
}

function toAsset(file: string, raw: Buffer): Asset {
  return {
    type: CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
    raw,
    gzip: gzipSync(raw, { level: 6 }),
    // Quality 6: within 2% of 9's size at a twentieth of the time (the first request to /console waits on it).
    br: brotliCompressSync(raw, { params: { [zlib.BROTLI_PARAM_QUALITY]: 6 } }),
    etag: `"${createHash('sha256').update(raw).digest('base64url').slice(0, 22)}"`,
  };
}

/** The import map of index.html, whose hash the page's CSP allows (the only inline script). */
function importMapHash(html: string): string {
  const match = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html);
  if (!match?.[1]) throw new Error('console/index.html has no import map');
  return `'sha256-${createHash('sha256').update(match[1]).digest('base64')}'`;
}

/** Loads and compresses every console file once: a few hundred kilobytes, served from memory. */
function loadAssets(): { assets: Map<string, Asset>; csp: string } {
  const assets = new Map<string, Asset>();
  const walk = (dir: string, prefix: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file, `${prefix}${entry.name}/`);
      else if (CONTENT_TYPES[path.extname(entry.name)])
        assets.set(`${prefix}${entry.name}`, toAsset(file, readFileSync(file)));
    }
  };
  walk(CONSOLE_DIR, '');
  for (const [name, { pkg, file }] of Object.entries(VENDOR_FILES)) {
    const full = path.join(packageDir(pkg), file);
    assets.set(`vendor/${name}`, toAsset(full, readFileSync(full)));
  }
  const index = assets.get('index.html');
  if (!index) throw new Error(`${CONSOLE_DIR}/index.html is missing`);
  const csp = [
    "default-src 'none'",
    `script-src 'self' ${importMapHash(index.raw.toString('utf8'))}`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { assets, csp };
}

/** Options of {@link createConsoleRoutes}. */
export interface ConsoleOptions {
  /** Whether the API asks for a key: the console then asks for one before its first query. */
  readonly authEnabled: boolean;
}

/**
 * Serves the operations console under `/console`: static files only (the page talks to `/graphql` like any
 * client, with the user's API key), and `config.json` saying whether a key is needed. Brotli or gzip when the
 * browser accepts it, ETags for revalidation. Returns a handler that answers `true` when it served the request.
 */
export function createConsoleRoutes(
  options: ConsoleOptions,
): (request: IncomingMessage, response: ServerResponse) => boolean {
  let loaded: ReturnType<typeof loadAssets> | undefined;
  const config = JSON.stringify({ auth: options.authEnabled });
  return (request, response) => {
    const url = request.url ?? '';
    if (url !== CONSOLE_PATH && !url.startsWith(`${CONSOLE_PATH}/`)) return false;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      response.end('Method not allowed\n');
      return true;
    }
    if (url === CONSOLE_PATH) {
      response.writeHead(308, { location: `${CONSOLE_PATH}/` }).end();
      return true;
    }
    if (url === `${CONSOLE_PATH}/config.json`) {
      response.writeHead(200, {
        'content-type': 'application/json',
        'cache-control': 'no-store',
        'content-length': Buffer.byteLength(config),
      });
      response.end(request.method === 'HEAD' ? undefined : config);
      return true;
    }
    loaded ??= loadAssets();
    // Looked up by the raw path in a fixed map: nothing is read from disk per request, nothing escapes.
    const asset = loaded.assets.get(url.slice(CONSOLE_PATH.length + 1).split(/[?#]/)[0] || 'index.html');
    if (!asset) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found\n');
      return true;
    }
    const headers: Record<string, string> = {
      'content-type': asset.type,
      etag: asset.etag,
      vary: 'accept-encoding',
      // Revalidate every time: an upgraded package serves new files under the same names.
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    };
    if (asset.type.startsWith('text/html')) headers['content-security-policy'] = loaded.csp;
    if (request.headers['if-none-match'] === asset.etag) {
      response.writeHead(304, headers).end();
      return true;
    }
    const accepts = String(request.headers['accept-encoding'] ?? '');
    let body = asset.raw;
    if (/\bbr\b/.test(accepts)) {
      body = asset.br;
      headers['content-encoding'] = 'br';
    } else if (/\bgzip\b/.test(accepts)) {
      body = asset.gzip;
      headers['content-encoding'] = 'gzip';
    }
    headers['content-length'] = String(body.length);
    response.writeHead(200, headers);
    response.end(request.method === 'HEAD' ? undefined : body);
    return true;
  };
}
