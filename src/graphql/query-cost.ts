import { createRequire } from 'node:module';
import type { DocumentNode, ExecutionResult, GraphQLSchema } from 'graphql';
import type { ComplexityEstimator } from 'graphql-query-complexity';
import { createGraphQLError, type Plugin } from 'graphql-yoga';

// graphql-query-complexity's ESM build imports graphql's `.mjs` files, while the schema (Pothos, yoga) is
// built on graphql's CommonJS entry (what `import 'graphql'` resolves to): graphql-js refuses to mix the two
// realms. Its CommonJS build uses the same graphql as the schema.
const { getComplexity, simpleEstimator } = createRequire(import.meta.url)(
  'graphql-query-complexity',
) as typeof import('graphql-query-complexity');

/** Page size a connection returns when `first` is not given (the resolvers' default). */
const DEFAULT_PAGE = 50;

/**
 * A connection's children cost `first` times over: each of its `edges` is a page entry. `first` is read from
 * the operation's variables as well as from literals (graphql-armor's static cost rule only sees literals,
 * so `orders(first: $n)` used to count as one). A connection without `first` costs its default page.
 */
const pagedEstimator: ComplexityEstimator = ({ field, args, childComplexity }) => {
  if (!field.args.some((arg) => arg.name === 'first')) return undefined;
  const first = typeof args.first === 'number' && args.first >= 0 ? args.first : DEFAULT_PAGE;
  return 1 + first * childComplexity;
};

/**
 * The estimated cost of an operation with its variables: 1 per field, a connection's selection × its page
 * size. Undefined when the variables do not coerce (execution then reports that itself).
 */
export function operationCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  variables: Record<string, unknown> | null | undefined,
  operationName: string | null | undefined,
): number | undefined {
  try {
    return getComplexity({
      schema,
      query: document,
      variables: variables ?? {},
      ...(operationName ? { operationName } : {}),
      estimators: [pagedEstimator, simpleEstimator({ defaultComplexity: 1 })],
    });
  } catch (error) {
    // Variables that do not coerce: execution reports them. Anything else is a bug and must not let
    // operations through unpriced.
    if (error instanceof Error && error.name === 'GraphQLError') return undefined;
    throw error;
  }
}

function refusal(maxCost: number, cost: number): ExecutionResult {
  return {
    errors: [
      createGraphQLError(`Query cost limit of ${maxCost} exceeded, found ${cost}.`, {
        extensions: { code: 'COST_LIMIT_EXCEEDED', maxCost, cost, http: { status: 400 } },
      }),
    ],
  };
}

/**
 * Refuses an operation whose cost, computed with its variable values, exceeds `maxCost` — before any
 * resolver runs. An envelop execute/subscribe hook (variables are not known at validation), so it applies
 * to HTTP, SSE and WebSocket operations alike. graphql-armor's validation-time cost rule stays in front as
 * the cheap first check for literal documents.
 */
export function useVariableAwareCostLimit(schema: GraphQLSchema, maxCost: number): Plugin {
  const check = (args: {
    schema: GraphQLSchema;
    document: DocumentNode;
    variableValues?: Record<string, unknown> | null | undefined;
    operationName?: string | null | undefined;
  }) => {
    const cost = operationCost(args.schema, args.document, args.variableValues, args.operationName);
    return cost !== undefined && cost > maxCost ? refusal(maxCost, cost) : undefined;
  };
  return {
    // Right after parsing, with the request's variables (yoga's `params`; the WebSocket transport passes the
    // same): an over-budget document is refused before validation, whose overlapping-fields rule is
    // quadratic in the aliases and took ~100 ms of the event loop for the 30-alias attack. A document that
    // cannot be priced yet (unknown fields, bad variables) goes on to validation, which reports it.
    onParse({ context }) {
      const params = (context as { params?: { variables?: unknown; operationName?: unknown } }).params;
      return ({ result, replaceParseResult }) => {
        if (!result || result instanceof Error || !('kind' in result)) return;
        let cost: number | undefined;
        try {
          cost = operationCost(
            schema,
            result,
            (params?.variables as Record<string, unknown> | undefined) ?? {},
            typeof params?.operationName === 'string' ? params.operationName : undefined,
          );
        } catch {
          return;
        }
        if (cost !== undefined && cost > maxCost) {
          replaceParseResult(refusal(maxCost, cost).errors?.[0] as Error);
        }
      };
    },
    onExecute({ args, setResultAndStopExecution }) {
      const refused = check(args as never);
      if (refused) setResultAndStopExecution(refused);
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const refused = check(args as never);
      if (refused) setResultAndStopExecution(refused);
    },
  };
}

/** Longest a query or mutation may run by default before its client gets `DEADLINE_EXCEEDED`, ms. */
export const DEFAULT_EXECUTION_TIMEOUT_MS = 10_000;

/**
 * Answers a query or mutation that runs longer than `timeoutMs` with a `DEADLINE_EXCEEDED` error (HTTP 503)
 * instead of holding the client. graphql-js cannot abort a running execution, so the work itself is bounded
 * by the API pool's `statement_timeout` (see main.ts); this bounds what the client waits for, and a
 * connection's worth of results never piles up behind a stuck resolver. Subscriptions are not timed.
 */
export function useExecutionDeadline(timeoutMs: number): Plugin {
  return {
    onExecute({ executeFn, setExecuteFn }) {
      setExecuteFn(async (args) => {
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<ExecutionResult>((resolve) => {
          timer = setTimeout(
            () =>
              resolve({
                errors: [
                  createGraphQLError(`The operation did not complete within ${timeoutMs} ms`, {
                    extensions: { code: 'DEADLINE_EXCEEDED', http: { status: 503 } },
                  }),
                ],
              }),
            timeoutMs,
          );
        });
        try {
          return await Promise.race([executeFn(args) as Promise<ExecutionResult>, deadline]);
        } finally {
          clearTimeout(timer);
        }
      });
    },
  };
}
