import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../logger.ts';
import type { Readiness } from './health.ts';
import type { Metrics } from './metrics.ts';

/** Paths of the operational routes. */
export const OPS_PATHS = Object.freeze({ metrics: '/metrics', health: '/healthz', ready: '/readyz' });

/** Options of {@link createOpsRoutes}. */
export interface OpsRoutesOptions {
  /** Served on `/metrics` (Prometheus text format). Omitted: no `/metrics`. */
  readonly metrics?: Metrics | undefined;
  /** Answers `/readyz` (200 when ready, else 503, with the checks as JSON). Omitted: no `/readyz`. */
  readonly readiness?: (() => Promise<Readiness>) | undefined;
  readonly logger: Logger;
}

/** A node request handler that answers the routes it knows and returns false for anything else. */
export type OpsRoutes = (request: IncomingMessage, response: ServerResponse) => boolean;

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(json),
  });
  response.end(json);
}

/**
 * `/healthz`, `/readyz` and `/metrics` on the API's HTTP server. They need no credentials — a load
 * balancer and Prometheus must reach them — so expose the port's `/metrics` on an internal network only
 * (consumer names, event types and volumes are visible there; no payloads, keys or ids).
 *
 * - `/healthz`: 200 `{"status":"ok"}` while the process answers (liveness).
 * - `/readyz`: 200 or 503 with `{ ready, checks: { database, migrations, workers } }` (readiness).
 * - `/metrics`: Prometheus text. If the database cannot be read, the in-process metrics are still served
 *   (the database-backed gauges keep their last values) — a scrape during an outage still shows it.
 */
export function createOpsRoutes(options: OpsRoutesOptions): OpsRoutes {
  const log = options.logger.child({ component: 'ops-routes' });
  const { metrics, readiness } = options;
  return (request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const known =
      path === OPS_PATHS.health ||
      (path === OPS_PATHS.ready && readiness) ||
      (path === OPS_PATHS.metrics && metrics);
    if (!known) return false;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return true;
    }
    if (path === OPS_PATHS.health) {
      sendJson(response, 200, { status: 'ok' });
    } else if (path === OPS_PATHS.ready && readiness) {
      readiness().then(
        (result) => {
          // Causes go to the log; callers (unauthenticated) see only which check failed.
          const checks = Object.fromEntries(
            Object.entries(result.checks).map(([name, { cause, ...check }]) => {
              if (cause !== undefined) log.warn({ err: cause, check: name }, 'readiness check failed');
              return [name, check];
            }),
          );
          sendJson(response, result.ready ? 200 : 503, { ready: result.ready, checks });
        },
        (error: unknown) => {
          log.warn({ err: error }, 'readiness check failed');
          sendJson(response, 503, { ready: false, error: 'readiness check failed' });
        },
      );
    } else if (metrics) {
      metrics
        .render()
        .catch(async (error: unknown) => {
          log.warn({ err: error }, 'metrics: reading the database failed; serving in-process metrics only');
          return metrics.registry.metrics();
        })
        .then(
          (text) => {
            response.writeHead(200, {
              'content-type': metrics.registry.contentType,
              'cache-control': 'no-store',
            });
            response.end(text);
          },
          (error: unknown) => {
            log.error({ err: error }, 'metrics: rendering failed');
            response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
          },
        );
    }
    return true;
  };
}
