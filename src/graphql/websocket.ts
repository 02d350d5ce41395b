import type { IncomingMessage } from 'node:http';
import { type ExecutionArgs, type GraphQLError, type GraphQLFormattedError, getOperationAST } from 'graphql';
import { CloseCode, makeServer } from 'graphql-ws';
import { createGraphQLError } from 'graphql-yoga';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Principal } from '../auth/principal.ts';
import { traceparentFrom } from '../observability/trace.ts';
import { API_KEY_HEADER, type Credentials, serviceUnavailableError, unauthenticatedError } from './access.ts';
import { CORRELATION_HEADER, correlationIdFrom } from './context.ts';
import { type CredentialWatch, watchCredentials } from './credential-watch.ts';
import type { PrincipalQuota } from './principal-quotas.ts';
import { sharedJson } from './shared-results.ts';
import { type ClientInfo, closeReason, type SlowClientGuard } from './slow-clients.ts';
import type { GraphqlApi } from './yoga.ts';

/** Close code when the connection's credentials are refused at `connection_init`. */
export const CLOSE_UNAUTHORIZED = CloseCode.Unauthorized; // 4401
/** Close code when the credentials are valid but grant nothing usable here. */
export const CLOSE_FORBIDDEN = CloseCode.Forbidden; // 4403
/** Close code when the caller is over its rate limit at `connection_init`. */
export const CLOSE_RATE_LIMITED = 4429;

/** Close code when the credentials cannot be checked now (the database is unreachable): retry later. */
export const CLOSE_TRY_AGAIN_LATER = 1013;

/** Subscriptions one connection may hold by default. */
export const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION = 20;

/** Options of {@link serveGraphqlOverWebSocket}. */
export interface GraphqlWebSocketOptions {
  readonly api: GraphqlApi;
  /** Created with `handleProtocols` from graphql-ws, on the GraphQL path. */
  readonly wss: WebSocketServer;
  /** Error details in close reasons. */
  readonly development: boolean;
  /** Subscriptions one connection may hold; more are refused with `TOO_MANY_SUBSCRIPTIONS`. */
  readonly maxSubscriptionsPerConnection: number;
  readonly slowClients: SlowClientGuard;
  /** Open connections per principal; more are closed with 4429. */
  readonly connectionQuota: PrincipalQuota;
  /** Ping interval; a client that does not answer within another interval is dropped, ms. Default `12000`. */
  readonly keepAliveMs?: number;
}

/** What the server keeps per connection. */
interface Connection {
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
  readonly info: ClientInfo;
  /** Set by `connection_init` once the credentials are accepted. */
  principal: Principal | undefined;
  /** The credentials of `connection_init`, checked again before every operation and periodically. */
  credentials: Credentials | undefined;
  /** Ends the connection once its credentials are revoked or expire. */
  watch: CredentialWatch | undefined;
  /** Gives back the connection's unit of its principal's connection quota (set once admitted). */
  releaseQuota: (() => void) | undefined;
  /** Ids of this connection's running subscriptions (queries and mutations are not counted). */
  readonly subscriptions: Set<string>;
}

/** Execution args of a WebSocket operation, carrying the envelop phases to run it with. */
interface EnvelopedArgs extends ExecutionArgs {
  readonly envelopedExecute: (args: ExecutionArgs) => unknown;
  readonly envelopedSubscribe: (args: ExecutionArgs) => unknown;
}

const text = (value: unknown): string | undefined => (typeof value === 'string' && value ? value : undefined);

function header(request: IncomingMessage, name: string): string | undefined {
  return text(request.headers[name]);
}

/** Errors as sent to clients, without yoga's internal `http` extension (it has no meaning here). */
function formatted(errors: readonly GraphQLError[]): GraphQLFormattedError[] {
  return errors.map((error) => {
    const json = error.toJSON();
    if (!json.extensions || !('http' in json.extensions)) return json;
    const { http: _http, ...extensions } = json.extensions;
    return { ...json, extensions };
  });
}

/** Stands in for a shared result's JSON while graphql-ws serialises its `next` message (see below). */
const SHARED_PAYLOAD = '\u0000postbox:shared-payload\u0000';
const SHARED_PAYLOAD_TAIL = `"payload":${JSON.stringify(SHARED_PAYLOAD)}}`;

/**
 * Lets a result shared by every subscriber of its selection (shared-results.ts) be serialised once, not once
 * per socket. graphql-ws serialises each message itself (`JSON.stringify(message, replacer)`) and hands the
 * text straight to the connection's `send`, in the same synchronous step: the replacer swaps the shared
 * payload for a marker and remembers its text, and `send` puts the text in the marker's place (`payload`
 * is the message's last key). Anything else passes through untouched.
 */
function sharedPayloadSplicer(): {
  replacer: (this: unknown, key: string, value: unknown) => unknown;
  splice: (data: string) => string;
} {
  let pending: string | undefined;
  return {
    replacer(key, value) {
      if (key !== 'payload') return value;
      const json = sharedJson(value);
      if (json === undefined) return value;
      pending = json;
      return SHARED_PAYLOAD;
    },
    splice(data) {
      if (pending === undefined) return data;
      const json = pending;
      pending = undefined;
      if (!data.endsWith(SHARED_PAYLOAD_TAIL)) {
        // graphql-ws changed how it builds messages: fail loudly rather than send a wrong payload.
        throw new Error('graphql-ws message without the shared payload marker where one was expected');
      }
      return `${data.slice(0, data.length - SHARED_PAYLOAD_TAIL.length)}"payload":${json}}`;
    },
  };
}

/**
 * Serves the graphql-ws protocol on `wss`, running every operation through the API's envelop (the same
 * parser limits, validation rules, scopes, error masking and context as HTTP).
 *
 * Built on graphql-ws's `makeServer` rather than its `useServer` so that every outgoing message goes
 * through the {@link SlowClientGuard} (which sees how long a send waits for the client to read).
 *
 * - `connection_init` authenticates: `{ authorization: "Bearer …" }` or `{ apiKey }` in the connection
 *   params (or the upgrade request's `Authorization` / `x-api-key` headers). Refused: close 4401
 *   (Unauthorized); a principal without any Postbox scope: 4403; over the rate limit: 4429.
 * - Each operation is charged to the caller's rate limit (a `RATE_LIMITED` error).
 * - At most `maxSubscriptionsPerConnection` subscriptions at once (a `TOO_MANY_SUBSCRIPTIONS` error).
 * - Trace context: `extensions.traceparent` of the operation, else `traceparent` in the connection
 *   params, else the upgrade request's header. Correlation id: the upgrade request's `x-correlation-id`
 *   header, else `correlationId` in the connection params, else a new one per operation.
 */
export function serveGraphqlOverWebSocket(options: GraphqlWebSocketOptions): { dispose(): Promise<void> } {
  const { api, wss, slowClients } = options;
  const { yoga } = api;
  const log = api.logger.child({ component: 'graphql-ws' });
  const keepAliveMs = options.keepAliveMs ?? 12_000;

  const shared = sharedPayloadSplicer();
  const server = makeServer<Record<string, unknown> | undefined, Connection>({
    jsonMessageReplacer: shared.replacer,
    // onSubscribe below puts the enveloped execute/subscribe on the args.
    execute: (args) => (args as EnvelopedArgs).envelopedExecute(args) as never,
    subscribe: (args) => (args as EnvelopedArgs).envelopedSubscribe(args) as never,
    onConnect: async (ctx) => {
      const connection = ctx.extra;
      const params = ctx.connectionParams ?? {};
      const credentials: Credentials = {
        authorization: text(params.authorization) ?? header(connection.request, 'authorization'),
        apiKey: text(params.apiKey) ?? header(connection.request, API_KEY_HEADER),
      };
      let principal: Principal;
      try {
        principal = await api.access.admitRequest(credentials, connection.info.clientAddress);
      } catch (error) {
        const code = (error as GraphQLError).extensions?.code;
        connection.socket.close(
          code === 'RATE_LIMITED'
            ? CLOSE_RATE_LIMITED
            : code === 'SERVICE_UNAVAILABLE'
              ? CLOSE_TRY_AGAIN_LATER
              : CLOSE_UNAUTHORIZED,
          closeReason((error as Error).message),
        );
        return false;
      }
      if (principal.scopes.size === 0) {
        connection.socket.close(CLOSE_FORBIDDEN, 'Forbidden: these credentials carry no Postbox scope');
        return false;
      }
      if (!options.connectionQuota.take(principal)) {
        connection.socket.close(
          CLOSE_RATE_LIMITED,
          `Too many connections: at most ${options.connectionQuota.limit} per API key or token`,
        );
        return false;
      }
      connection.releaseQuota = () => options.connectionQuota.release(principal);
      connection.principal = principal;
      connection.credentials = credentials;
      connection.info.principal = principal.id;
      connection.watch = watchCredentials({
        access: api.access,
        credentials,
        principal,
        intervalMs: api.credentialRecheckMs,
        logger: log,
      });
      void connection.watch.lost.then((loss) => {
        if (connection.socket.readyState === connection.socket.OPEN) {
          connection.socket.close(
            loss.forbidden ? CLOSE_FORBIDDEN : CLOSE_UNAUTHORIZED,
            closeReason(loss.error.message),
          );
        }
      });
      return true;
    },
    onSubscribe: async (ctx, id, payload) => {
      const connection = ctx.extra;
      const principal = connection.principal;
      if (!principal) return [unauthenticatedError('connection_init was not accepted')];
      // Revocation and expiry take effect on the next operation of an open connection, not only on the
      // next connection.
      if (principal.kind !== 'anonymous' && connection.credentials) {
        let again: Awaited<ReturnType<typeof api.access.reauthenticate>>;
        try {
          again = await api.access.reauthenticate(connection.credentials);
        } catch (error) {
          log.warn({ err: error }, 're-checking credentials failed');
          return [serviceUnavailableError()];
        }
        if (!again.ok || again.principal.scopes.size === 0) {
          const error = unauthenticatedError(
            again.ok ? 'these credentials carry no Postbox scope' : again.reason,
          );
          connection.watch?.stop();
          connection.socket.close(
            again.ok ? CLOSE_FORBIDDEN : CLOSE_UNAUTHORIZED,
            closeReason(error.message),
          );
          return [error];
        }
      }
      try {
        api.access.admitOperation(principal, connection.info.clientAddress);
      } catch (error) {
        return [error as GraphQLError];
      }
      const params = (ctx.connectionParams ?? {}) as Record<string, unknown>;
      const correlationId = correlationIdFrom(
        header(connection.request, CORRELATION_HEADER) ?? text(params.correlationId),
      );
      const traceparent = [
        text(payload.extensions?.traceparent),
        text(params.traceparent),
        header(connection.request, 'traceparent'),
      ]
        .map((value) => (value ? traceparentFrom({ get: () => value }) : undefined))
        .find((value) => value !== undefined);
      const enveloped = yoga.getEnveloped({ correlationId, principal, traceparent, params: payload });
      let document: ReturnType<typeof enveloped.parse>;
      try {
        document = enveloped.parse(payload.query);
      } catch (error) {
        return [error as GraphQLError];
      }
      const errors = enveloped.validate(enveloped.schema, document);
      if (errors.length > 0) return errors;
      const isSubscription = getOperationAST(document, payload.operationName)?.operation === 'subscription';
      // graphql-ws forgets an operation as soon as the client completes it (before it has wound down).
      for (const running of connection.subscriptions) {
        if (!(running in ctx.subscriptions)) connection.subscriptions.delete(running);
      }
      if (isSubscription && connection.subscriptions.size >= options.maxSubscriptionsPerConnection) {
        return [
          createGraphQLError(
            `Too many subscriptions on this connection: at most ${options.maxSubscriptionsPerConnection}; ` +
              'complete one first or open another connection',
            { extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } },
          ),
        ];
      }
      // Taken before the first await: operations of one connection are handled concurrently.
      if (isSubscription) connection.subscriptions.add(id);
      let contextValue: unknown;
      try {
        contextValue = await enveloped.contextFactory();
      } catch (error) {
        connection.subscriptions.delete(id);
        return [error as GraphQLError];
      }
      return {
        schema: enveloped.schema,
        operationName: payload.operationName,
        document,
        variableValues: payload.variables,
        contextValue,
        envelopedExecute: enveloped.execute,
        envelopedSubscribe: enveloped.subscribe,
      } satisfies EnvelopedArgs;
    },
    onComplete: (ctx, id) => {
      ctx.extra.subscriptions.delete(id);
    },
    // A shared result goes out as it is (graphql-ws would copy it, and the copy is not known to be shared).
    onNext: (_ctx, _id, _payload, _args, result) =>
      result.errors
        ? { ...result, errors: formatted(result.errors) }
        : sharedJson(result) !== undefined
          ? result
          : undefined,
    onError: (_ctx, _id, _payload, errors) => formatted(errors),
  });

  wss.on('connection', (socket, request) => {
    const connection: Connection = {
      socket,
      request,
      info: { clientAddress: request.socket.remoteAddress ?? 'unknown' },
      principal: undefined,
      credentials: undefined,
      watch: undefined,
      releaseQuota: undefined,
      subscriptions: new Set(),
    };
    let ended = false;
    let pongWait: NodeJS.Timeout | undefined;
    const end = (code: number, reason: string) => {
      if (ended) return;
      ended = true;
      clearInterval(ping);
      clearTimeout(pongWait);
      connection.watch?.stop();
      connection.releaseQuota?.();
      connection.releaseQuota = undefined;
      gate.dispose();
      closed(code, reason).catch((error: unknown) =>
        log.error({ err: error }, 'closing a connection failed'),
      );
    };
    const gate = slowClients.watchSocket(socket, connection.info, end);
    const ping = setInterval(() => {
      if (socket.readyState !== socket.OPEN) return;
      pongWait = setTimeout(() => socket.terminate(), keepAliveMs);
      socket.once('pong', () => clearTimeout(pongWait));
      socket.ping();
    }, keepAliveMs);
    socket.once('error', (error) => {
      log.debug({ err: error }, 'websocket error');
      socket.close(CloseCode.InternalServerError, 'Internal server error');
    });
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) => gate.send(shared.splice(data)),
        close: (code, reason) => {
          // After our own close (e.g. 4401 from onConnect) graphql-ws may ask again with its generic code.
          if (socket.readyState === socket.OPEN) socket.close(code, reason);
        },
        onMessage: (handle) => {
          socket.on('message', async (data) => {
            try {
              await handle(String(data));
            } catch (error) {
              log.error({ err: error }, 'websocket message handling failed');
              socket.close(
                CloseCode.InternalServerError,
                options.development ? closeReason((error as Error).message) : 'Internal server error',
              );
            }
          });
        },
      },
      connection,
    );
    socket.once('close', (code, reason) => end(code, String(reason)));
  });

  return {
    async dispose() {
      for (const client of wss.clients) client.close(1001, 'Going away');
      wss.removeAllListeners();
      await new Promise<void>((resolve, reject) => wss.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
