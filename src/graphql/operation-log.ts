import { type DocumentNode, type GraphQLError, getOperationAST } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { GraphQLContext } from './context.ts';
import { unexpectedCause } from './error-masking.ts';

function describe(document: DocumentNode, operationName?: string | null) {
  const operation = getOperationAST(document, operationName);
  return { operation: operation?.operation ?? 'unknown', operationName: operation?.name?.value ?? null };
}

/**
 * Logs through the request's logger (a child carrying `correlationId` and the principal): one `debug` line
 * per operation, and every unexpected error at `error` with its cause and stack — the client only sees
 * "Unexpected error." and the correlation id (echoed in the `x-correlation-id` response header), which is
 * what to search the logs for. Runs before yoga's masking, so it sees the original errors.
 */
export function useOperationLog(): Plugin<GraphQLContext> {
  const logErrors = (
    context: GraphQLContext,
    errors: readonly GraphQLError[] | undefined,
    about: Record<string, unknown>,
  ) => {
    for (const error of errors ?? []) {
      const cause = unexpectedCause(error);
      if (cause !== undefined) {
        context.logger.error(
          { ...about, err: cause, path: error.path },
          'unexpected error (masked for the client)',
        );
      }
    }
  };
  return {
    onExecute({ args }) {
      const started = performance.now();
      const about = describe(args.document, args.operationName);
      return {
        onExecuteDone({ result }) {
          if (isAsyncIterable(result)) return;
          logErrors(args.contextValue, result.errors, about);
          args.contextValue.logger.debug(
            {
              ...about,
              errors: result.errors?.length ?? 0,
              durationMs: Math.round(performance.now() - started),
            },
            'graphql operation',
          );
        },
      };
    },
    onSubscribe({ args }) {
      const about = describe(args.document, args.operationName);
      return {
        onSubscribeResult({ result }) {
          if (!isAsyncIterable(result)) {
            logErrors(args.contextValue, result.errors, about);
            args.contextValue.logger.debug(
              { ...about, errors: result.errors?.length ?? 0 },
              'graphql operation',
            );
            return undefined;
          }
          args.contextValue.logger.debug(about, 'subscription started');
          return {
            onNext: ({ result: event }) => logErrors(args.contextValue, event.errors, about),
            onEnd: () => args.contextValue.logger.debug(about, 'subscription ended'),
          };
        },
      };
    },
  };
}
