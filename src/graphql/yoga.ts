import type { IncomingMessage } from 'node:http';
import { useDisableIntrospection } from '@envelop/disable-introspection';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { createAuthenticator } from '../auth/authenticate.ts';
import type { JwtVerifier } from '../auth/jwt.ts';
import type { Principal } from '../auth/principal.ts';
import type { Db } from '../db/database.ts';
import type { AddressPolicy, Notifier } from '../engine/index.ts';
import { createEventRegistry } from '../engine/index.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { traceparentFrom } from '../observability/trace.ts';
import { SHOP_EVENTS } from '../shop/shop.events.ts';
import {
  type AccessControl,
  type Credentials,
  createAccessControl,
  credentialsFromHeaders,
  unauthenticatedError,
} from './access.ts';
import { CORRELATION_HEADER, correlationIdFrom, createContext, type GraphQLContext } from './context.ts';
import { useContractRoutes } from './contract-routes.ts';
import { DEFAULT_CREDENTIAL_RECHECK_MS } from './credential-watch.ts';
import { isGraphQLError, maskPostboxError, unexpectedCause } from './error-masking.ts';
import { useWellFormedStrings } from './input-strings.ts';
import { LogTailer, type LogTailerOptions } from './log-tailer.ts';
import { useOperationLog } from './operation-log.ts';
import { useOperationMetrics } from './operation-metrics.ts';
import {
  DEFAULT_MAX_SUBSCRIPTIONS_PER_PRINCIPAL,
  PrincipalQuota,
  useSubscriptionQuota,
} from './principal-quotas.ts';
import {
  DEFAULT_EXECUTION_TIMEOUT_MS,
  useExecutionDeadline,
  useVariableAwareCostLimit,
} from './query-cost.ts';
import { useNoFormBodies } from './same-site.ts';
import { schema } from './schema/index.ts';
import { useSharedSubscriptionResults } from './shared-results.ts';
import { useSubscriptionCredentialWatch } from './subscription-credentials.ts';

/** Largest request body accepted by default: 1 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** Header a GET request (or any request a browser would not preflight) must carry: yoga's CSRF header. */
export const CSRF_HEADER = 'x-graphql-yoga-csrf';
/** The GraphQL path. */
export const GRAPHQL_PATH = '/graphql';

/** Static limits on an operation's document, enforced by graphql-armor before anything runs. */
export interface QueryLimits {
  /** Deepest selection (fragments flattened; introspection excepted). Default `10`. */
  readonly maxDepth: number;
  /** Aliases per operation. Default `30`. */
  readonly maxAliases: number;
  /** Lexical tokens per document (checked while parsing). Default `5000`. */
  readonly maxTokens: number;
  /**
   * graphql-armor's cost estimate: 1 per scalar, 2 per object, ×1.5 per level of depth, × `first` of a
   * connection. Default `50000` (e.g. three `events(first: 500)` pages with a handful of fields each).
   */
  readonly maxCost: number;
  /** Directives per operation. Default `50`. */
  readonly maxDirectives: number;
}

/** The defaults of {@link QueryLimits}. */
export const DEFAULT_QUERY_LIMITS: QueryLimits = Object.freeze({
  maxDepth: 10,
  maxAliases: 30,
  maxTokens: 5000,
  maxCost: 50_000,
  maxDirectives: 50,
});

/**
 * What the server passes in besides the request. Over HTTP that is node's `req` (yoga's node adapter);
 * the WebSocket path passes the connection's principal, correlation id and trace context itself.
 */
export interface ServerContext {
  readonly req?: IncomingMessage;
  readonly correlationId?: string;
  readonly principal?: Principal;
  readonly traceparent?: string | undefined;
}

/** Who may call the API. */
export interface ApiAuthOptions {
  /**
   * Require credentials (`Authorization: Bearer <API key or JWT>` or `x-api-key`). Off: every caller is the
   * anonymous principal with every scope — for local development only.
   */
  readonly enabled: boolean;
  /** Verifier of JWT bearer tokens; without one, only API keys are accepted. */
  readonly jwt?: JwtVerifier | undefined;
}

/** Options of {@link createGraphqlApi}. */
export interface GraphqlApiOptions {
  readonly db: Db;
  readonly logger: Logger;
  /** For the subscription feed's LISTEN connection; omitted: the feed polls only. */
  readonly connectionString?: string | undefined;
  /** The engine's wake-up connection when it runs in this process (shared by the subscription feed). */
  readonly notifier?: Notifier | undefined;
  /** Authentication. Required, so that no caller ends up with an open API by leaving it out. */
  readonly auth: ApiAuthOptions;
  /** Error details (`extensions.originalError`) and "Did you mean …" suggestions. Default `false`. */
  readonly development?: boolean;
  /** Schema introspection, and GraphiQL on GET /graphql from a browser. Default: `development`. */
  readonly introspection?: boolean;
  /** Larger request bodies get a 413 and a GraphQL error. Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /** Document limits; each defaults to {@link DEFAULT_QUERY_LIMITS}. */
  readonly limits?: Partial<QueryLimits>;
  /** Requests (and WebSocket operations) per minute per caller. Default: no limit. */
  readonly rateLimitPerMinute?: number | undefined;
  /** Which addresses destinations created through the API may target. Default: public addresses only. */
  readonly destinationAddressPolicy?: AddressPolicy | undefined;
  /** Where GraphQL operations and open subscriptions are counted. Omitted: not counted. */
  readonly metrics?: Metrics | undefined;
  /**
   * How often open WebSocket connections and live subscriptions re-check their credentials (revoked keys,
   * expired tokens; a token's `exp` is also acted on at that instant), ms. Default
   * {@link DEFAULT_CREDENTIAL_RECHECK_MS}.
   */
  readonly credentialRecheckMs?: number;
  /** Live subscriptions per principal, all transports. Default {@link DEFAULT_MAX_SUBSCRIPTIONS_PER_PRINCIPAL}. */
  readonly maxSubscriptionsPerPrincipal?: number;
  /** Longest a query or mutation may run, ms. Default {@link DEFAULT_EXECUTION_TIMEOUT_MS}. */
  readonly executionTimeoutMs?: number;
  /** Tuning of the subscription feed. */
  readonly feed?: Partial<Pick<LogTailerOptions, 'pollIntervalMs' | 'pageSize' | 'bufferLimit'>>;
}

/** The GraphQL API without a socket: `yoga.fetch()` for tests, `yoga` as a Node request handler. */
export interface GraphqlApi {
  readonly yoga: YogaServerInstance<ServerContext, GraphQLContext>;
  readonly tailer: LogTailer;
  /** Authentication and rate limiting (the WebSocket transport admits its connections through it). */
  readonly access: AccessControl;
  /** See {@link GraphqlApiOptions.credentialRecheckMs}. */
  readonly credentialRecheckMs: number;
  readonly logger: Logger;
  /** Ends every subscription and stops the feed. */
  close(): Promise<void>;
}

/** The peer address of a request, for per-address rate limits (`unknown` without a socket, e.g. `yoga.fetch`). */
export function clientAddressOf(serverContext: ServerContext | undefined): string {
  return serverContext?.req?.socket?.remoteAddress ?? 'unknown';
}

const EXAMPLE_QUERY = `# Postbox: try a mutation, then watch it flow.
# With authentication on, add a header: { "Authorization": "Bearer pbx_…" }
mutation AddProduct {
  addProduct(input: { sku: "KEYB-1", name: "Keyboard", priceCents: 8900, stock: 10 }) {
    __typename
    ... on AddProductSuccess { product { sku stock } }
    ... on Error { code message }
  }
}

mutation PlaceOrder {
  placeOrder(input: { customerId: "ada", idempotencyKey: "try-1", lines: [{ sku: "KEYB-1", quantity: 1 }] }) {
    __typename
    ... on PlaceOrderSuccess { order { id status totalCents } }
    ... on ValidationError { field message }
  }
}

subscription Events {
  events(fromBeginning: true) { cursor type streamType streamId streamVersion payload }
}
`;

/**
 * Builds the GraphQL API: the Pothos schema served by graphql-yoga (GET and POST, subscriptions over SSE),
 * plus the subscription feed.
 *
 * Guard rails, in the order a request meets them:
 * 1. authentication and the per-caller rate limit (before the body is read: 401 / 429);
 * 2. the body size limit (413);
 * 3. graphql-armor's document limits (tokens while parsing; depth, aliases, cost, directives at
 *    validation) and, unless enabled, no introspection;
 * 4. scopes per field (403, see builder.ts);
 * 5. error masking that lets expected failures through with their `code` and hides the rest.
 */
export function createGraphqlApi(options: GraphqlApiOptions): GraphqlApi {
  const development = options.development ?? false;
  const introspection = options.introspection ?? development;
  const limits = { ...DEFAULT_QUERY_LIMITS, ...options.limits };
  const registry = createEventRegistry(SHOP_EVENTS);
  const tailer = new LogTailer({
    db: options.db,
    connectionString: options.connectionString,
    notifier: options.notifier,
    registry,
    logger: options.logger,
    ...options.feed,
  });
  const deps = {
    db: options.db,
    tailer,
    registry,
    logger: options.logger,
    destinationAddressPolicy: options.destinationAddressPolicy ?? {},
  };
  const log = options.logger.child({ component: 'graphql' });
  const access = createAccessControl({
    authenticator: createAuthenticator({
      enabled: options.auth.enabled,
      db: options.db,
      ...(options.auth.jwt ? { jwt: options.auth.jwt } : {}),
    }),
    rateLimitPerMinute: options.rateLimitPerMinute,
    logger: options.logger,
  });
  const correlationIds = new WeakMap<Request, string>();
  const principals = new WeakMap<Request, Principal>();
  const credentialsOf = new WeakMap<Request, Credentials>();
  const credentialRecheckMs = options.credentialRecheckMs ?? DEFAULT_CREDENTIAL_RECHECK_MS;

  const correlationPlugin: Plugin = {
    onRequest({ request }) {
      correlationIds.set(request, correlationIdFrom(request.headers.get(CORRELATION_HEADER)));
    },
    onResponse({ request, response }) {
      const id = correlationIds.get(request);
      if (id) response.headers.set(CORRELATION_HEADER, id);
    },
  };

  // Runs before the body is read, so a caller without valid credentials (or over its limit) costs a header
  // check and at most one key lookup. An error thrown here becomes a GraphQL error response with its status.
  const accessPlugin: Plugin<Record<string, unknown>, ServerContext> = {
    async onRequestParse({ request, serverContext }) {
      const credentials = credentialsFromHeaders(request.headers);
      const principal = await access.admitRequest(credentials, clientAddressOf(serverContext));
      principals.set(request, principal);
      credentialsOf.set(request, credentials);
    },
  };

  const yoga = createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    // Without auth every caller is an admin: a web page the developer visits must not be able to drive the
    // local API from the browser, so cross-origin requests get no CORS grant then. With auth, credentials
    // are bearer tokens (never cookies), and yoga's default CORS is harmless.
    ...(options.auth.enabled ? {} : { cors: false }),
    graphiql: introspection ? { title: 'Postbox', defaultQuery: EXAMPLE_QUERY } : false,
    // GraphiQL from the installed package, not yoga's default CDN page: it must work offline and under a CSP.
    // Imported on the first GraphiQL page view (the bundle is ~9 MB of JavaScript).
    renderGraphiQL: async (graphiqlOptions) =>
      (await import('@graphql-yoga/render-graphiql')).renderGraphiQL(graphiqlOptions),
    maxRequestBodySize: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    context: ({ request, correlationId, principal, traceparent }) => {
      const caller = principal ?? (request ? principals.get(request) : undefined);
      // Unreachable over HTTP (onRequestParse admitted the request) and WebSocket (the connection was).
      if (!caller) throw unauthenticatedError('the request was not authenticated');
      return createContext(deps, {
        correlationId:
          correlationId ??
          correlationIds.get(request) ??
          correlationIdFrom(request?.headers.get(CORRELATION_HEADER)),
        principal: caller,
        traceparent: traceparent ?? (request ? traceparentFrom(request.headers) : undefined),
        credentials: request ? credentialsOf.get(request) : undefined,
      });
    },
    maskedErrors: { isDev: development, maskError: maskPostboxError },
    logging: {
      debug: (...args: unknown[]) => log.debug({ detail: args }, 'yoga'),
      info: (...args: unknown[]) => log.info({ detail: args }, 'yoga'),
      warn: (...args: unknown[]) => log.warn({ detail: args }, 'yoga'),
      // yoga reports every error a resolver threw; the client's own mistakes (validation, not found…) are
      // not the service's errors, and the unexpected ones are logged with their cause by operation-log.ts.
      error: (...args: unknown[]) =>
        args.every((arg) => isGraphQLError(arg) && unexpectedCause(arg) === undefined)
          ? log.debug({ detail: args }, 'yoga: client error')
          : log.error({ detail: args }, 'yoga'),
    },
    plugins: [
      useNoFormBodies(),
      // GET /asyncapi.json and /schemas/<type>/<version>.json (scope events:read), before the GraphQL checks.
      useContractRoutes({
        graphqlPath: GRAPHQL_PATH,
        db: options.db,
        registry,
        access,
        clientAddress: (serverContext) => clientAddressOf(serverContext as ServerContext | undefined),
      }),
      // A GET (the one operation request a browser sends cross-site without a preflight) needs the
      // `x-graphql-yoga-csrf` header; so does any other non-preflighted request the check above let through.
      useCSRFPrevention({ requestHeaders: [CSRF_HEADER] }),
      accessPlugin,
      correlationPlugin,
      useOperationLog(),
      useSubscriptionCredentialWatch(access, credentialRecheckMs),
      // `events` results depend only on the event, the selection and the caller's scopes: one execution and
      // one serialisation per event and distinct selection, however many subscribe.
      useSharedSubscriptionResults({ fields: new Set(['events']) }),
      ...(options.metrics ? [useOperationMetrics(options.metrics)] : []),
      // A validation rule, so it applies to WebSocket operations too (they skip yoga's request hooks).
      ...(introspection ? [] : [useDisableIntrospection()]),
      EnvelopArmorPlugin({
        maxDepth: { n: limits.maxDepth, flattenFragments: true },
        maxAliases: { n: limits.maxAliases },
        maxTokens: { n: limits.maxTokens },
        costLimit: { maxCost: limits.maxCost },
        maxDirectives: { n: limits.maxDirectives },
        // "Did you mean …" helps while developing; in production it would map the schema for a stranger.
        blockFieldSuggestion: { enabled: !development },
      }),
      useWellFormedStrings(),
      useSubscriptionQuota(
        new PrincipalQuota(options.maxSubscriptionsPerPrincipal ?? DEFAULT_MAX_SUBSCRIPTIONS_PER_PRINCIPAL),
      ),
      useVariableAwareCostLimit(schema, limits.maxCost),
      useExecutionDeadline(options.executionTimeoutMs ?? DEFAULT_EXECUTION_TIMEOUT_MS),
    ],
  });

  return {
    yoga,
    tailer,
    access,
    credentialRecheckMs,
    logger: options.logger,
    close: () => tailer.stop(),
  };
}
