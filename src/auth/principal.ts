/** Scopes an API key or token can carry. */
export const SCOPES = ['orders:write', 'events:read', 'admin'] as const;

/** One scope. `admin` implies the others. */
export type Scope = (typeof SCOPES)[number];

/** Who is calling, once authenticated. */
export interface Principal {
  /** `key:<id>` for an API key, `jwt:<sub>` for a token, `anonymous` when auth is off. */
  readonly id: string;
  readonly kind: 'api-key' | 'jwt' | 'anonymous';
  readonly scopes: ReadonlySet<Scope>;
  /** When the credentials stop being valid (a JWT's `exp`); open connections are ended then. */
  readonly expiresAt?: Date | undefined;
}

/** The principal used when authentication is turned off (local development): every scope. */
export const ANONYMOUS: Principal = Object.freeze({
  id: 'anonymous',
  kind: 'anonymous',
  scopes: new Set(SCOPES),
});

/** True if `principal` may do what `scope` guards (`admin` may do everything). */
export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.has(scope) || principal.scopes.has('admin');
}

/** Keeps the known scopes of a list and drops the rest (tokens may carry scopes of other services). */
export function parseScopes(values: Iterable<string>): Set<Scope> {
  const known = new Set<string>(SCOPES);
  return new Set([...values].filter((value): value is Scope => known.has(value)));
}
