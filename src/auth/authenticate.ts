import type { Db } from '../db/database.ts';
import { verifyApiKey } from './api-keys.ts';
import type { JwtVerifier } from './jwt.ts';
import { ANONYMOUS, type Principal } from './principal.ts';

/** Outcome of {@link Authenticator.authenticate}. */
export type AuthResult =
  | { readonly ok: true; readonly principal: Principal }
  | { readonly ok: false; readonly reason: string };

/** Turns request credentials into a principal. */
export interface Authenticator {
  /** Whether authentication is required at all (`POSTBOX_AUTH`). */
  readonly enabled: boolean;
  /**
   * Reads `Authorization: Bearer <API key or JWT>` or `x-api-key: <API key>`. For WebSocket connections pass
   * the connection params' `authorization` / `apiKey` the same way.
   */
  authenticate(credentials: { authorization?: string | null; apiKey?: string | null }): Promise<AuthResult>;
}

/** Options of {@link createAuthenticator}. */
export interface AuthenticatorOptions {
  readonly enabled: boolean;
  readonly db: Db;
  /** Verifier for JWT bearer tokens; without one, only API keys are accepted. */
  readonly jwt?: JwtVerifier;
}

/** Builds the authenticator. With auth disabled every request is {@link ANONYMOUS} (all scopes). */
export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  return {
    enabled: options.enabled,
    async authenticate(credentials) {
      if (!options.enabled) return { ok: true, principal: ANONYMOUS };
      const bearer = /^Bearer\s+(\S+)$/i.exec(credentials.authorization ?? '')?.[1];
      const token = bearer ?? credentials.apiKey ?? undefined;
      if (!token)
        return { ok: false, reason: 'missing credentials: send Authorization: Bearer <API key or JWT>' };
      if (token.startsWith('pbx_')) {
        const principal = await verifyApiKey(options.db, token);
        return principal ? { ok: true, principal } : { ok: false, reason: 'invalid or revoked API key' };
      }
      if (!options.jwt)
        return { ok: false, reason: 'bearer tokens are not accepted here (no JWT key configured)' };
      const principal = await options.jwt(token);
      return principal ? { ok: true, principal } : { ok: false, reason: 'invalid or expired token' };
    },
  };
}
