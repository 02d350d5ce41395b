import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import {
  createGraphQLError,
  createYoga,
  maskError,
  type Plugin,
  type YogaServerInstance,
} from 'graphql-yoga';
import type { Db } from '../db/database.ts';
import { PostboxError, ValidationError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { createEventRegistry } from '../outbox/read.ts';
import { SHOP_EVENTS } from '../shop/shop.events.ts';
import { CORRELATION_HEADER, correlationIdFrom, createContext, type GraphQLContext } from './context.ts';
import { LogTailer, type LogTailerOptions } from './log-tailer.ts';
import { schema } from './schema/index.ts';

/** Largest request body accepted by default: 1 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** Deepest selection accepted by default (introspection excepted). */
export const DEFAULT_MAX_DEPTH = 10;
/** The GraphQL path. */
export const GRAPHQL_PATH = '/graphql';

/** What the server passes in besides the request (the WebSocket path passes the correlation id itself). */
export interface ServerContext {
  readonly correlationId?: string;
}

/** Options of {@link createGraphqlApi}. */
export interface GraphqlApiOptions {
  readonly db: Db;
  readonly logger: Logger;
  /** For the subscription feed's LISTEN connection; omitted: the feed polls only. */
  readonly connectionString?: string | undefined;
  /** Serve GraphiQL on GET /graphql from a browser, and include error details. Default `false`. */
  readonly development?: boolean;
  /** Larger request bodies get a 413 and a GraphQL error. Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /** Deeper queries are refused at validation. Default {@link DEFAULT_MAX_DEPTH}. */
  readonly maxDepth?: number;
  /** Tuning of the subscription feed. */
  readonly feed?: Partial<Pick<LogTailerOptions, 'pollIntervalMs' | 'pageSize' | 'bufferLimit'>>;
}

/** The GraphQL API without a socket: `yoga.fetch()` for tests, `yoga` as a Node request handler. */
export interface GraphqlApi {
  readonly yoga: YogaServerInstance<ServerContext, GraphQLContext>;
  readonly tailer: LogTailer;
  /** Ends every subscription and stops the feed. */
  close(): Promise<void>;
}

/**
 * Duck-typed `instanceof GraphQLError`: graphql-js can be loaded twice (its ESM and CommonJS builds, e.g.
 * under vitest), and an error from one build is not an instance of the other's class.
 */
function isGraphQLError(error: unknown): error is Error & {
  originalError?: unknown;
  nodes?: ReadonlyArray<never>;
  path?: ReadonlyArray<string | number>;
} {
  return error instanceof Error && error.name === 'GraphQLError';
}

/** Failures worth telling the client as they are (codes of {@link PostboxError}s); anything else is masked. */
const EXPOSED_CODES = new Set(['VALIDATION_FAILED', 'NOT_FOUND', 'ILLEGAL_STATE', 'CONCURRENCY_CONFLICT']);

const EXAMPLE_QUERY = `# Postbox: try a mutation, then watch it flow.
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
 * plus the subscription feed. Guard rails: a request body limit, a depth limit and the other
 * graphql-armor limits, and error masking that lets expected failures through with their `code`.
 */
export function createGraphqlApi(options: GraphqlApiOptions): GraphqlApi {
  const development = options.development ?? false;
  const registry = createEventRegistry(SHOP_EVENTS);
  const tailer = new LogTailer({
    db: options.db,
    connectionString: options.connectionString,
    registry,
    logger: options.logger,
    ...options.feed,
  });
  const deps = { db: options.db, tailer, registry, logger: options.logger };
  const correlationIds = new WeakMap<Request, string>();
  const log = options.logger.child({ component: 'graphql' });

  const correlationPlugin: Plugin = {
    onRequest({ request }) {
      correlationIds.set(request, correlationIdFrom(request.headers.get(CORRELATION_HEADER)));
    },
    onResponse({ request, response }) {
      const id = correlationIds.get(request);
      if (id) response.headers.set(CORRELATION_HEADER, id);
    },
  };

  const yoga = createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    graphiql: development ? { title: 'Postbox', defaultQuery: EXAMPLE_QUERY } : false,
    maxRequestBodySize: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    context: ({ request, correlationId }) =>
      createContext(
        deps,
        correlationId ??
          correlationIds.get(request) ??
          correlationIdFrom(request?.headers.get(CORRELATION_HEADER)),
      ),
    maskedErrors: {
      isDev: development,
      maskError(error, message, isDev) {
        const original = isGraphQLError(error) ? error.originalError : error;
        if (original instanceof PostboxError && EXPOSED_CODES.has(original.code)) {
          const extensions: Record<string, unknown> = { code: original.code };
          if (original instanceof ValidationError && original.field) extensions.field = original.field;
          return createGraphQLError(original.message, {
            ...(isGraphQLError(error) ? { nodes: error.nodes, path: error.path } : {}),
            extensions,
          });
        }
        if (original !== undefined && !isGraphQLError(original)) {
          log.error({ err: original }, 'unexpected error (masked for the client)');
        }
        return maskError(error, message, isDev);
      },
    },
    logging: {
      debug: (...args: unknown[]) => log.debug({ detail: args }, 'yoga'),
      info: (...args: unknown[]) => log.info({ detail: args }, 'yoga'),
      warn: (...args: unknown[]) => log.warn({ detail: args }, 'yoga'),
      error: (...args: unknown[]) => log.error({ detail: args }, 'yoga'),
    },
    plugins: [
      correlationPlugin,
      EnvelopArmorPlugin({
        maxDepth: { n: options.maxDepth ?? DEFAULT_MAX_DEPTH, flattenFragments: true },
        maxAliases: { n: 30 },
        maxTokens: { n: 5000 },
        costLimit: { maxCost: 50_000 },
        // "Did you mean …" helps while developing; in production it would map the schema for a stranger.
        blockFieldSuggestion: { enabled: !development },
      }),
    ],
  });

  return {
    yoga,
    tailer,
    close: () => tailer.stop(),
  };
}
