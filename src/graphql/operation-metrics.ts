import { type DocumentNode, getOperationAST } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { Metrics } from '../observability/metrics.ts';

function operationType(document: DocumentNode | undefined, operationName?: string | null): string {
  return (document && getOperationAST(document, operationName)?.operation) ?? 'unknown';
}

/**
 * Counts GraphQL operations and their errors (`postbox_graphql_operations_total`,
 * `postbox_graphql_errors_total`, by operation type) and keeps `postbox_subscriptions_open` up to date.
 * An envelop plugin, so HTTP, SSE and WebSocket operations are counted alike. Operations refused at
 * validation (depth, cost, unknown fields…) count with their errors; requests refused before parsing
 * (401, 429, 413) are not GraphQL operations and are not counted here.
 */
export function useOperationMetrics(metrics: Metrics): Plugin {
  return {
    onValidate({ params }) {
      return ({ valid, result }) => {
        if (!valid) metrics.onGraphqlOperation(operationType(params.documentAST), result.length);
      };
    },
    onExecute({ args }) {
      const type = operationType(args.document, args.operationName);
      return {
        onExecuteDone({ result }) {
          if (!isAsyncIterable(result)) metrics.onGraphqlOperation(type, result.errors?.length ?? 0);
        },
      };
    },
    onSubscribe() {
      let open = false;
      const close = () => {
        if (open) metrics.subscriptionsOpen.dec();
        open = false;
      };
      return {
        onSubscribeResult({ result }) {
          if (!isAsyncIterable(result)) {
            metrics.onGraphqlOperation('subscription', result.errors?.length ?? 0);
            return undefined;
          }
          metrics.onGraphqlOperation('subscription', 0);
          metrics.subscriptionsOpen.inc();
          open = true;
          return { onEnd: close };
        },
        // A source that throws ends without `onEnd`.
        onSubscribeError: close,
      };
    },
  };
}
