import type { IncomingMessage } from 'node:http';
import { createGraphQLError, type Plugin } from 'graphql-yoga';

const LOOPBACK_HOSTNAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

/** The host name of a `Host` header (without its port), lower-cased. */
function hostnameOf(host: string): string {
  const value = host.trim().toLowerCase();
  if (value.startsWith('[')) return value.slice(0, value.indexOf(']') + 1);
  return value.split(':')[0] ?? '';
}

/**
 * True for a `Host` (or an `Origin`'s host) that names this machine's loopback: `localhost`, `*.localhost`,
 * `127.0.0.1` or `[::1]`, any port. A DNS-rebinding page reaches the loopback interface under its own name
 * (`rebind.evil.example`), which is what this refuses while authentication is off.
 */
export function isLoopbackHost(host: string | undefined | null): boolean {
  if (!host) return false;
  const name = hostnameOf(host);
  return LOOPBACK_HOSTNAMES.has(name) || name.endsWith('.localhost');
}

/** True when an `Origin` header is absent (not a browser) or names a loopback host. */
export function isLoopbackOrigin(origin: string | undefined | null): boolean {
  if (!origin) return true;
  try {
    return isLoopbackHost(new URL(origin).host);
  } catch {
    return false;
  }
}

/** Why a request is refused before it reaches the API (status and text), or undefined to serve it. */
export function refuseForeignRequest(
  request: Pick<IncomingMessage, 'headers'>,
  options: { authEnabled: boolean; upgrade?: boolean },
): { status: number; message: string } | undefined {
  if (options.authEnabled) return undefined;
  if (!isLoopbackHost(request.headers.host)) {
    return {
      status: 421,
      message: 'Misdirected request: with authentication off only loopback hosts are served',
    };
  }
  // Browsers send no preflight for a WebSocket: a foreign page could otherwise open one to the local API.
  if (options.upgrade && !isLoopbackOrigin(request.headers.origin)) {
    return { status: 403, message: 'Forbidden: cross-origin WebSocket while authentication is off' };
  }
  return undefined;
}

/** Content types a browser may POST cross-site without a CORS preflight (HTML forms, `text/plain`). */
const SIMPLE_CONTENT_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'];

/**
 * Refuses POST bodies a foreign page can send without a preflight: forms (url-encoded or multipart, which
 * yoga would otherwise parse) and `text/plain`. 415, before authentication or the body is read. Together
 * with yoga's CSRF prevention (a custom header required on anything else that is not preflighted, i.e. GET),
 * no cross-site request runs an operation, with or without authentication.
 */
export function useNoFormBodies(): Plugin {
  return {
    onRequestParse({ request }) {
      if (request.method !== 'POST') return;
      const type = request.headers.get('content-type')?.toLowerCase() ?? '';
      if (SIMPLE_CONTENT_TYPES.some((simple) => type.startsWith(simple))) {
        throw createGraphQLError(
          'Unsupported Media Type: POST a JSON body (content-type: application/json)',
          { extensions: { code: 'UNSUPPORTED_MEDIA_TYPE', http: { status: 415 } } },
        );
      }
    },
  };
}
