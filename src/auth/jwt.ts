import {
  createLocalJWKSet,
  createRemoteJWKSet,
  importSPKI,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import { type Principal, parseScopes } from './principal.ts';

/** How bearer tokens are verified. At least one key source must be given. */
export interface JwtOptions {
  /** Shared secret for HS256 tokens. */
  readonly hs256Secret?: string;
  /** PEM (SPKI) public key for RS256 tokens. */
  readonly rs256PublicKey?: string;
  /** JWKS URL for RS256 tokens (keys fetched and cached by jose). */
  readonly jwksUrl?: string;
  /** Inline JWKS (JSON), e.g. for tests or air-gapped setups. */
  readonly jwks?: { keys: object[] };
  /** Required `iss`, if set. */
  readonly issuer?: string;
  /** Required `aud`, if set. */
  readonly audience?: string;
  /**
   * Oldest accepted token, by its `iat`, in seconds; tokens without `iat` are then refused. Default: no
   * limit beyond `exp`.
   */
  readonly maxTokenAgeSeconds?: number;
}

/** Verifies a bearer token and maps it to a principal; `undefined` if invalid, expired or unverifiable. */
export type JwtVerifier = (token: string) => Promise<Principal | undefined>;

/**
 * Builds a verifier over jose. Scopes come from the OAuth `scope` claim (space-separated) or a `scopes`
 * array; unknown scopes are ignored. `exp` and a string `sub` are required. Algorithms are pinned per key source (HS256 for the secret, RS256 for
 * public keys), so a token cannot pick a weaker one ("alg confusion").
 */
export async function createJwtVerifier(options: JwtOptions): Promise<JwtVerifier> {
  const sources: Array<{ key: Uint8Array | CryptoKey | JWTVerifyGetKey; algorithms: string[] }> = [];
  if (options.hs256Secret)
    sources.push({ key: new TextEncoder().encode(options.hs256Secret), algorithms: ['HS256'] });
  if (options.rs256PublicKey)
    sources.push({ key: await importSPKI(options.rs256PublicKey, 'RS256'), algorithms: ['RS256'] });
  if (options.jwksUrl)
    sources.push({ key: createRemoteJWKSet(new URL(options.jwksUrl)), algorithms: ['RS256'] });
  if (options.jwks) sources.push({ key: createLocalJWKSet(options.jwks as never), algorithms: ['RS256'] });
  if (sources.length === 0) throw new Error('JWT verification needs a secret, a public key or a JWKS');
  return async (token) => {
    for (const source of sources) {
      try {
        const { payload } = await jwtVerify(token, source.key as never, {
          algorithms: source.algorithms,
          // A token without an expiry would be valid forever; one without a subject names nobody.
          requiredClaims: ['exp', 'sub'],
          ...(options.maxTokenAgeSeconds !== undefined ? { maxTokenAge: options.maxTokenAgeSeconds } : {}),
          ...(options.issuer ? { issuer: options.issuer } : {}),
          ...(options.audience ? { audience: options.audience } : {}),
        });
        return toPrincipal(payload);
      } catch {
        // try the next key source
      }
    }
    return undefined;
  };
}

function toPrincipal(payload: JWTPayload): Principal | undefined {
  // A subject must be a non-empty string: `jwt:42` from a numeric claim would be a principal nobody issued.
  if (typeof payload.sub !== 'string' || payload.sub.trim() === '') return undefined;
  const scopes: string[] = [];
  if (typeof payload.scope === 'string') scopes.push(...payload.scope.split(' '));
  if (Array.isArray(payload.scopes))
    scopes.push(...payload.scopes.filter((s): s is string => typeof s === 'string'));
  return {
    id: `jwt:${payload.sub}`,
    kind: 'jwt',
    scopes: parseScopes(scopes),
    ...(typeof payload.exp === 'number' ? { expiresAt: new Date(payload.exp * 1000) } : {}),
  };
}
