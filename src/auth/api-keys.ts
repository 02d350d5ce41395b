import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import { NotFoundError, ValidationError } from '../engine/index.ts';
import { type Principal, parseScopes, SCOPES, type Scope } from './principal.ts';

/** A key as listed (never with its secret). */
export interface ApiKeyInfo {
  readonly id: string;
  readonly name: string;
  readonly prefix: string;
  readonly scopes: readonly Scope[];
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
}

const KEY_FORMAT = /^pbx_([a-z0-9]{10})_([A-Za-z0-9_-]{43})$/;
const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/**
 * Creates an API key with the given scopes. The returned `key` (`pbx_<prefix>_<secret>`) is the only time
 * the secret exists in clear: only its SHA-256 is stored.
 */
export async function createApiKey(
  db: Db,
  input: { name: string; scopes: readonly string[]; key?: string },
): Promise<{ id: string; key: string; scopes: Scope[] }> {
  const scopes = [...parseScopes(input.scopes)];
  const unknown = input.scopes.filter((scope) => !(SCOPES as readonly string[]).includes(scope));
  if (unknown.length > 0)
    throw new ValidationError(
      `Unknown scope(s): ${unknown.join(', ')}; known: ${SCOPES.join(', ')}`,
      'scopes',
    );
  if (scopes.length === 0) throw new ValidationError('A key needs at least one scope', 'scopes');
  if (!input.name.trim() || input.name.length > 100)
    throw new ValidationError('A key needs a name (1–100 characters)', 'name');
  if (input.key !== undefined) return installApiKey(db, input.key, input.name.trim(), scopes);
  const bytes = randomBytes(10);
  const prefix = [...bytes].map((byte) => alphabet[byte % alphabet.length]).join('');
  const secret = randomBytes(32).toString('base64url');
  const { rows } = await sql<{ id: string }>`
    insert into postbox.api_keys (name, prefix, secret_sha256, scopes)
    values (${input.name.trim()}, ${prefix}, ${sha256(secret)}, ${scopes}::text[])
    returning id`.execute(db);
  return { id: rows[0]?.id as string, key: `pbx_${prefix}_${secret}`, scopes };
}

/**
 * Installs a key chosen by the operator (e.g. from a deployment secret), idempotently: installing the same
 * key again is a no-op; a different secret under an existing prefix is refused.
 */
async function installApiKey(
  db: Db,
  key: string,
  name: string,
  scopes: Scope[],
): Promise<{ id: string; key: string; scopes: Scope[] }> {
  const match = KEY_FORMAT.exec(key);
  if (!match) throw new ValidationError('A key must look like pbx_<10 of a-z0-9>_<43 of A-Za-z0-9_->', 'key');
  const [, prefix, secret] = match as unknown as [string, string, string];
  const { rows } = await sql<{ id: string; secret_sha256: Buffer }>`
    insert into postbox.api_keys (name, prefix, secret_sha256, scopes)
    values (${name}, ${prefix}, ${sha256(secret)}, ${scopes}::text[])
    on conflict (prefix) do update set prefix = excluded.prefix
    returning id, secret_sha256`.execute(db);
  const row = rows[0] as { id: string; secret_sha256: Buffer };
  if (!timingSafeEqual(row.secret_sha256, sha256(secret))) {
    throw new ValidationError(`Another key already uses the prefix ${prefix}`, 'key');
  }
  return { id: row.id, key, scopes };
}

/** Resolves an API key to its principal; `undefined` for a malformed, unknown or revoked key. */
export async function verifyApiKey(db: Db, key: string): Promise<Principal | undefined> {
  const match = KEY_FORMAT.exec(key);
  if (!match) return undefined;
  const [, prefix, secret] = match as unknown as [string, string, string];
  const { rows } = await sql<{
    id: string;
    secret_sha256: Buffer;
    scopes: string[];
    revoked_at: Date | null;
  }>`
    select id, secret_sha256, scopes, revoked_at from postbox.api_keys where prefix = ${prefix}`.execute(db);
  const row = rows[0];
  if (!row || row.revoked_at) return undefined;
  if (!timingSafeEqual(row.secret_sha256, sha256(secret))) return undefined;
  // Best effort, at most once a minute per key: a hot key must not turn every request into a write.
  await sql`update postbox.api_keys set last_used_at = now()
            where id = ${row.id} and (last_used_at is null or last_used_at < now() - interval '1 minute')`.execute(
    db,
  );
  return { id: `key:${row.id}`, kind: 'api-key', scopes: parseScopes(row.scopes) };
}

/** Lists keys, newest first. */
export async function listApiKeys(db: Db): Promise<ApiKeyInfo[]> {
  const { rows } = await sql<{
    id: string;
    name: string;
    prefix: string;
    scopes: string[];
    created_at: Date;
    last_used_at: Date | null;
    revoked_at: Date | null;
  }>`select id, name, prefix, scopes, created_at, last_used_at, revoked_at from postbox.api_keys
     order by created_at desc`.execute(db);
  return rows.map((row) => ({
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    scopes: [...parseScopes(row.scopes)],
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  }));
}

/** Revokes a key by id or prefix; takes effect on the next request. */
export async function revokeApiKey(db: Db, idOrPrefix: string): Promise<void> {
  const byId = /^[0-9a-f-]{36}$/i.test(idOrPrefix);
  const { rows } = await sql`
    update postbox.api_keys set revoked_at = coalesce(revoked_at, now())
    where ${byId ? sql`id = ${idOrPrefix}::uuid` : sql`prefix = ${idOrPrefix}`}
    returning id`.execute(db);
  if (rows.length === 0) throw new NotFoundError(`No API key ${idOrPrefix}`);
}
