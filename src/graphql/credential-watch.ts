import type { GraphQLError } from 'graphql';
import type { Principal } from '../auth/principal.ts';
import type { Logger } from '../logger.ts';
import { type AccessControl, type Credentials, unauthenticatedError } from './access.ts';

/** How often open connections and live subscriptions re-check their credentials by default, ms. */
export const DEFAULT_CREDENTIAL_RECHECK_MS = 5000;

/** Why a watch ended: the credentials stopped being valid, or no longer carry any scope. */
export interface CredentialLoss {
  readonly error: GraphQLError;
  /** True when the credentials are still valid but grant nothing (WebSocket close 4403 rather than 4401). */
  readonly forbidden: boolean;
}

/** A running {@link watchCredentials}. */
export interface CredentialWatch {
  /** Resolves once the credentials are revoked or expired (never resolves while they stay valid). */
  readonly lost: Promise<CredentialLoss>;
  /** Stops watching (the `lost` promise then never resolves). */
  stop(): void;
}

/**
 * Watches the credentials of an open connection or a live subscription: re-checks them every `intervalMs`
 * (an API key's revocation, a token's signature and claims) and fires at a token's `exp` exactly. The
 * anonymous principal (auth off) is never lost. A re-check that fails for another reason than the
 * credentials (the database is unreachable) keeps the connection: the next check decides.
 */
export function watchCredentials(options: {
  readonly access: AccessControl;
  readonly credentials: Credentials;
  readonly principal: Principal;
  readonly intervalMs: number;
  readonly logger: Logger;
}): CredentialWatch {
  const { access, credentials, principal } = options;
  let report: (loss: CredentialLoss) => void = () => undefined;
  const lost = new Promise<CredentialLoss>((resolve) => {
    report = resolve;
  });
  if (principal.kind === 'anonymous') return { lost, stop: () => undefined };
  let stopped = false;
  const timers: NodeJS.Timeout[] = [];
  const end = (loss: CredentialLoss) => {
    if (stopped) return;
    stop();
    options.logger.info({ principal: principal.id, reason: loss.error.message }, 'credentials lost: ending');
    report(loss);
  };
  const check = async () => {
    try {
      const result = await access.reauthenticate(credentials, { shared: true });
      if (!result.ok) end({ error: unauthenticatedError(result.reason), forbidden: false });
      else if (result.principal.scopes.size === 0)
        end({ error: unauthenticatedError('these credentials carry no Postbox scope'), forbidden: true });
    } catch (error) {
      options.logger.warn({ err: error, principal: principal.id }, 'credential re-check failed; keeping');
    }
  };
  const interval = setInterval(() => void check(), options.intervalMs);
  interval.unref();
  timers.push(interval);
  if (principal.expiresAt) {
    // setTimeout's limit is 2^31-1 ms (~24.8 days); later expiries are caught by the interval.
    const ms = Math.max(0, principal.expiresAt.getTime() - Date.now());
    if (ms < 2 ** 31 - 1) {
      const expiry = setTimeout(
        () => end({ error: unauthenticatedError('the token expired'), forbidden: false }),
        ms,
      );
      expiry.unref();
      timers.push(expiry);
    }
  }
  function stop() {
    stopped = true;
    for (const timer of timers) clearTimeout(timer);
  }
  return { lost, stop };
}
