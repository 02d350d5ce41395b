import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { handleProtocols } from 'graphql-ws';
import { WebSocketServer } from 'ws';
import { POSTBOX_VERSION } from '../config/version.ts';
import type { Readiness } from '../observability/health.ts';
import { createOpsRoutes, OPS_PATHS } from '../observability/routes.ts';
import { CONSOLE_PATH, createConsoleRoutes } from './console-assets.ts';
import { type LandingLink, renderLandingPage } from './landing-page.ts';
import { DEFAULT_MAX_CONNECTIONS_PER_PRINCIPAL, PrincipalQuota } from './principal-quotas.ts';
import { refuseForeignRequest } from './same-site.ts';
import { SlowClientGuard, type SlowClientOptions } from './slow-clients.ts';
import { DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION, serveGraphqlOverWebSocket } from './websocket.ts';
import { createGraphqlApi, DEFAULT_MAX_BODY_BYTES, type GraphqlApi, type GraphqlApiOptions } from './yoga.ts';

/** Options of {@link startApiServer}. */
export interface ApiServerOptions extends GraphqlApiOptions {
  /** Interface to bind. */
  readonly host: string;
  /** Port; `0` picks a free one. */
  readonly port: number;
  /** How long {@link ApiServer.close} lets in-flight requests finish before cutting them, ms. Default `5000`. */
  readonly shutdownGraceMs?: number;
  /** Subscriptions one WebSocket connection may hold. Default {@link DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION}. */
  readonly maxSubscriptionsPerConnection?: number;
  /** Open WebSocket connections per principal. Default {@link DEFAULT_MAX_CONNECTIONS_PER_PRINCIPAL}. */
  readonly maxConnectionsPerPrincipal?: number;
  /** When a subscriber that stops reading is disconnected (see slow-clients.ts). */
  readonly slowClients?: SlowClientOptions;
  /** Answers `/readyz`; omitted: no `/readyz`. (`/metrics` is served when `metrics` is given.) */
  readonly readiness?: (() => Promise<Readiness>) | undefined;
}

/** A listening API server. */
export interface ApiServer {
  /** `http://host:port/graphql`. */
  readonly url: string;
  readonly port: number;
  readonly api: GraphqlApi;
  readonly server: Server;
  /**
   * Stops accepting connections, ends every subscription (WebSocket clients get 1001 "Going away", SSE
   * streams complete), lets in-flight requests finish, then closes. Idempotent.
   */
  close(): Promise<void>;
}

/** A listen failure a person can act on: which address, and what to set. */
function listenError(error: unknown, host: string, port: number): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return new Error(
      `${host}:${port} is already in use (another Postbox, or another program, listens there): stop it, or ` +
        'set PORT to another port (PORT=0 picks a free one).',
      { cause: error },
    );
  }
  if (code === 'EACCES') {
    return new Error(`not allowed to listen on ${host}:${port}: set PORT to a port above 1023.`, {
      cause: error,
    });
  }
  if (code === 'EADDRNOTAVAIL') {
    return new Error(`${host} is not an address of this machine: set HOST (e.g. 127.0.0.1 or 0.0.0.0).`, {
      cause: error,
    });
  }
  return error as Error;
}

/** What `/` links to: only what this server actually serves. */
function landingLinks(options: ApiServerOptions): LandingLink[] {
  const graphiql = options.introspection ?? options.development ?? false;
  const links: LandingLink[] = [
    graphiql
      ? {
          href: '/graphql',
          title: 'GraphiQL',
          description: 'explore the schema, run queries and subscriptions',
        }
      : {
          href: '/graphql',
          title: '/graphql',
          description: 'the GraphQL endpoint (POST, GET, SSE, WebSocket)',
        },
    {
      href: `${CONSOLE_PATH}/`,
      title: 'Console',
      description: 'consumers, lag, dead letters and the event log, live (uses the same API keys)',
    },
    { href: OPS_PATHS.health, title: OPS_PATHS.health, description: 'liveness' },
  ];
  if (options.readiness) {
    links.push({
      href: OPS_PATHS.ready,
      title: OPS_PATHS.ready,
      description: 'readiness: database, migrations, workers',
    });
  }
  if (options.metrics) {
    links.push({ href: OPS_PATHS.metrics, title: OPS_PATHS.metrics, description: 'Prometheus metrics' });
  }
  return links;
}

const isEventStream = (accept: string | undefined) => accept?.includes('text/event-stream') ?? false;

/**
 * Serves the GraphQL API over HTTP on one path, `/graphql`: queries and mutations by GET or POST,
 * subscriptions over SSE (yoga's own) and over WebSocket (graphql-ws protocol, on the same path). The same
 * server answers `/healthz`, `/readyz` and `/metrics` without credentials (see observability/routes.ts), and
 * serves the operations console's static files under `/console` (console-assets.ts).
 */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const api = createGraphqlApi(options);
  const { yoga } = api;
  const slowClients = new SlowClientGuard(options.logger, options.slowClients);
  const opsRoutes = createOpsRoutes({
    metrics: options.metrics,
    readiness: options.readiness,
    logger: options.logger,
  });
  const consoleRoutes = createConsoleRoutes({ authEnabled: options.auth.enabled });
  const landingPage = renderLandingPage({ version: POSTBOX_VERSION, links: landingLinks(options) });
  const authEnabled = options.auth.enabled;
  const server = createServer((request, response) => {
    const refused = refuseForeignRequest(request, { authEnabled });
    if (refused) {
      response
        .writeHead(refused.status, { 'content-type': 'text/plain; charset=utf-8' })
        .end(`${refused.message}\n`);
      return;
    }
    if (opsRoutes(request, response)) return;
    if (consoleRoutes(request, response)) return;
    if (request.url === '/' && (request.method === 'GET' || request.method === 'HEAD')) {
      response.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(landingPage),
        'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
      });
      response.end(request.method === 'HEAD' ? undefined : landingPage);
      return;
    }
    if (isEventStream(request.headers.accept)) {
      slowClients.watchEventStream(response, { clientAddress: request.socket.remoteAddress ?? 'unknown' });
    }
    yoga(request, response);
  });
  const wss = new WebSocketServer({
    server,
    path: yoga.graphqlEndpoint,
    maxPayload: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    handleProtocols: (protocols) => handleProtocols(protocols),
    verifyClient: ({ req }, done) => {
      const refused = refuseForeignRequest(req, { authEnabled, upgrade: true });
      if (refused) done(false, refused.status, refused.message);
      else done(true);
    },
  });
  // ws re-emits the HTTP server's 'error' events on the WebSocketServer; without a listener a failed
  // listen (EADDRINUSE) became an unhandled 'error' that crashed Node before anything could clean up.
  wss.on('error', (error) => options.logger.debug({ err: error }, 'websocket server error'));
  const graphqlWs = serveGraphqlOverWebSocket({
    api,
    wss,
    development: options.development ?? false,
    maxSubscriptionsPerConnection:
      options.maxSubscriptionsPerConnection ?? DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
    slowClients,
    connectionQuota: new PrincipalQuota(
      options.maxConnectionsPerPrincipal ?? DEFAULT_MAX_CONNECTIONS_PER_PRINCIPAL,
    ),
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await graphqlWs.dispose().catch(() => undefined);
    slowClients.close();
    await api.close();
    throw listenError(error, options.host, options.port);
  }
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}${yoga.graphqlEndpoint}`,
    port,
    api,
    server,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        await graphqlWs.dispose();
        await api.close();
        slowClients.close();
        server.closeIdleConnections();
        // The grace timer is cancelled once the server has closed: left running, it kept the process
        // alive for the full grace period after a clean shutdown (SIGTERM took 5 s to exit).
        const grace = new AbortController();
        await Promise.race([
          closed,
          sleep(options.shutdownGraceMs ?? 5000, undefined, { signal: grace.signal }).catch(() => undefined),
        ]);
        grace.abort();
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}
