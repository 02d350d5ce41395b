import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { handleProtocols } from 'graphql-ws';
import { WebSocketServer } from 'ws';
import type { Readiness } from '../observability/health.ts';
import { createOpsRoutes } from '../observability/routes.ts';
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

const isEventStream = (accept: string | undefined) => accept?.includes('text/event-stream') ?? false;

/**
 * Serves the GraphQL API over HTTP on one path, `/graphql`: queries and mutations by GET or POST,
 * subscriptions over SSE (yoga's own) and over WebSocket (graphql-ws protocol, on the same path). The same
 * server answers `/healthz`, `/readyz` and `/metrics` without credentials (see observability/routes.ts).
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
    throw error;
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
