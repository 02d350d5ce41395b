import { createGraphQLError, isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { Principal } from '../auth/principal.ts';
import type { GraphQLContext } from './context.ts';

/** Live subscriptions one principal may hold across all its connections and SSE streams, by default. */
export const DEFAULT_MAX_SUBSCRIPTIONS_PER_PRINCIPAL = 100;
/** Open WebSocket connections one principal may hold, by default. */
export const DEFAULT_MAX_CONNECTIONS_PER_PRINCIPAL = 50;

/**
 * Counts something per principal against a cap (live subscriptions, open connections), in this process.
 * The anonymous principal (auth off, local development) is not capped: every caller is it.
 */
export class PrincipalQuota {
  private readonly counts = new Map<string, number>();

  /** Units one principal may hold. */
  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Takes one unit for `principal`; false (and nothing taken) when it is at its limit. */
  take(principal: Principal): boolean {
    if (principal.kind === 'anonymous') return true;
    const held = this.counts.get(principal.id) ?? 0;
    if (held >= this.limit) return false;
    this.counts.set(principal.id, held + 1);
    return true;
  }

  /** Gives back one unit taken by {@link take}. */
  release(principal: Principal): void {
    if (principal.kind === 'anonymous') return;
    const held = (this.counts.get(principal.id) ?? 0) - 1;
    if (held > 0) this.counts.set(principal.id, held);
    else this.counts.delete(principal.id);
  }
}

/**
 * Caps live subscriptions per principal across every transport (each WebSocket connection has its own,
 * smaller cap as well): beyond it a subscription is refused with `TOO_MANY_SUBSCRIPTIONS`. The unit is
 * given back when the subscription ends, however it ends.
 */
export function useSubscriptionQuota(quota: PrincipalQuota): Plugin<GraphQLContext> {
  return {
    onSubscribe({ args, setResultAndStopExecution }) {
      const principal = args.contextValue.principal;
      if (!quota.take(principal)) {
        setResultAndStopExecution({
          errors: [
            createGraphQLError(
              `Too many subscriptions: at most ${quota.limit} per API key or token; complete one first`,
              { extensions: { code: 'TOO_MANY_SUBSCRIPTIONS', http: { status: 429 } } },
            ),
          ],
        });
        return;
      }
      return {
        onSubscribeResult({ result }) {
          if (!isAsyncIterable(result)) {
            quota.release(principal);
            return;
          }
          return { onEnd: () => quota.release(principal) };
        },
      };
    },
  };
}
