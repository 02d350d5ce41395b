import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { CORRELATION_HEADER, correlationIdFrom } from './context.ts';
import { createGraphqlApi, DEFAULT_MAX_BODY_BYTES, type GraphqlApi, type GraphqlApiOptions } from './yoga.ts';

/** Execution args of a WebSocket operation, carrying the envelop phases to run it with. */
interface EnvelopedArgs extends ExecutionArgs {
  readonly envelopedExecute: (args: ExecutionArgs) => unknown;
  readonly envelopedSubscribe: (args: ExecutionArgs) => unknown;
}

/** Options of {@link startApiServer}. */
export interface ApiServerOptions extends GraphqlApiOptions {
  /** Interface to bind. */
  readonly host: string;
  /** Port; `0` picks a free one. */
  readonly port: number;
  /** How long {@link ApiServer.close} lets in-flight requests finish before cutting them, ms. Default `5000`. */
  readonly shutdownGraceMs?: number;
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

/**
 * Serves the GraphQL API over HTTP on one path, `/graphql`: queries and mutations by GET or POST,
 * subscriptions over SSE (yoga's own) and over WebSocket (graphql-ws protocol, on the same path).
 */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const api = createGraphqlApi(options);
  const { yoga } = api;
  const server = createServer(yoga);
  const wss = new WebSocketServer({
    server,
    path: yoga.graphqlEndpoint,
    maxPayload: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
  });
  const graphqlWs = useServer(
    {
      isProd: !options.development,
      // onSubscribe below puts the enveloped execute/subscribe on the args.
      execute: (args) => (args as EnvelopedArgs).envelopedExecute(args) as never,
      subscribe: (args) => (args as EnvelopedArgs).envelopedSubscribe(args) as never,
      onSubscribe: async (context, _id, payload) => {
        // Run each WebSocket operation through yoga's envelop (same parser limits, validation rules,
        // error masking and context as HTTP), taking the correlation id from the upgrade request or the
        // connection_init payload.
        const header = context.extra.request.headers[CORRELATION_HEADER];
        const fromInit = (context.connectionParams as Record<string, unknown> | undefined)?.correlationId;
        const correlationId = correlationIdFrom(
          typeof header === 'string' ? header : typeof fromInit === 'string' ? fromInit : undefined,
        );
        const enveloped = yoga.getEnveloped({ correlationId, params: payload });
        let document: ReturnType<typeof enveloped.parse>;
        try {
          document = enveloped.parse(payload.query);
        } catch (error) {
          return [error as never];
        }
        const args = {
          schema: enveloped.schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await enveloped.contextFactory(),
          envelopedExecute: enveloped.execute,
          envelopedSubscribe: enveloped.subscribe,
        } satisfies EnvelopedArgs;
        const errors = enveloped.validate(args.schema, args.document);
        if (errors.length > 0) return errors;
        return args;
      },
    },
    wss,
  );

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await Promise.resolve(graphqlWs.dispose()).catch(() => undefined);
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
        server.closeIdleConnections();
        await Promise.race([closed, sleep(options.shutdownGraceMs ?? 5000)]);
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}
