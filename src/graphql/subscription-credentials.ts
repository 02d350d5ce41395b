import type { ExecutionResult } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { AccessControl } from './access.ts';
import type { GraphQLContext } from './context.ts';
import { type CredentialWatch, watchCredentials } from './credential-watch.ts';

/**
 * Ends a subscription whose credentials were revoked or expired: its stream gets one last result carrying
 * the `UNAUTHENTICATED` error, then completes (over SSE: a `next` event with the error, then `complete`).
 * Applies to requests whose context carries credentials (HTTP, i.e. SSE); WebSocket connections are
 * watched as a whole and closed with 4401 (see websocket.ts).
 */
export function useSubscriptionCredentialWatch(
  access: AccessControl,
  intervalMs: number,
): Plugin<GraphQLContext> {
  return {
    onSubscribe({ args }) {
      const context = args.contextValue;
      if (!context.credentials || context.principal.kind === 'anonymous') return;
      const credentials = context.credentials;
      return {
        onSubscribeResult({ result, setResult }) {
          if (!isAsyncIterable(result)) return;
          const watch = watchCredentials({
            access,
            credentials,
            principal: context.principal,
            intervalMs,
            logger: context.logger,
          });
          setResult(endOnLoss(result, watch));
        },
      };
    },
  };
}

function endOnLoss(
  source: AsyncIterable<ExecutionResult>,
  watch: CredentialWatch,
): AsyncIterableIterator<ExecutionResult> {
  const iterator = source[Symbol.asyncIterator]();
  let finished = false;
  const lost = watch.lost.then((loss) => ({ loss }));
  return {
    async next() {
      if (finished) return { done: true, value: undefined };
      const outcome = await Promise.race([iterator.next(), lost]);
      if ('loss' in outcome) {
        finished = true;
        void iterator.return?.();
        return { done: false, value: { errors: [outcome.loss.error] } };
      }
      if (outcome.done) {
        finished = true;
        watch.stop();
      }
      return outcome;
    },
    async return(value?: unknown) {
      finished = true;
      watch.stop();
      await iterator.return?.(value);
      return { done: true, value: undefined };
    },
    async throw(error?: unknown) {
      finished = true;
      watch.stop();
      if (iterator.throw) return iterator.throw(error);
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
