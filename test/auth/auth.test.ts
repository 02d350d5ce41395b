import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, listApiKeys, revokeApiKey, verifyApiKey } from '../../src/auth/api-keys.ts';
import { createAuthenticator } from '../../src/auth/authenticate.ts';
import { createJwtVerifier } from '../../src/auth/jwt.ts';
import { hasScope } from '../../src/auth/principal.ts';
import { ValidationError } from '../../src/engine/errors.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t?.drop());

describe('API keys', () => {
  it('stores only a hash, verifies the key, honours scopes and revocation', async () => {
    const created = await createApiKey(t.db, { name: 'shop frontend', scopes: ['orders:write'] });
    expect(created.key).toMatch(/^pbx_[a-z0-9]{10}_[A-Za-z0-9_-]{43}$/);
    const { rows } = await sql<{
      dump: string;
    }>`select row_to_json(k)::text as dump from postbox.api_keys k`.execute(t.db);
    const secret = created.key.split('_').slice(2).join('_');
    expect(rows.map((row) => row.dump).join('')).not.toContain(secret);

    const principal = await verifyApiKey(t.db, created.key);
    expect(principal?.kind).toBe('api-key');
    expect(principal && hasScope(principal, 'orders:write')).toBe(true);
    expect(principal && hasScope(principal, 'admin')).toBe(false);
    expect(await verifyApiKey(t.db, `${created.key.slice(0, -1)}x`)).toBeUndefined();
    expect(await verifyApiKey(t.db, 'pbx_nope')).toBeUndefined();

    await revokeApiKey(t.db, created.id);
    expect(await verifyApiKey(t.db, created.key)).toBeUndefined();
    expect((await listApiKeys(t.db)).find((key) => key.id === created.id)?.revokedAt).toBeInstanceOf(Date);
  });

  it('installs an operator-chosen key idempotently and refuses a different secret under its prefix', async () => {
    const key = 'pbx_deploykey1_change-me-before-exposing-this-anywhere-001';
    const first = await createApiKey(t.db, { name: 'deploy', scopes: ['admin'], key });
    const again = await createApiKey(t.db, { name: 'deploy', scopes: ['admin'], key });
    expect(again.id).toBe(first.id);
    expect((await verifyApiKey(t.db, key))?.id).toBe(`key:${first.id}`);
    await expect(
      createApiKey(t.db, {
        name: 'x',
        scopes: ['admin'],
        key: 'pbx_deploykey1_another-secret-of-forty-three-characters-xx',
      }),
    ).rejects.toThrow(/prefix/);
    await expect(
      createApiKey(t.db, { name: 'x', scopes: ['admin'], key: 'pbx_short' }),
    ).rejects.toBeInstanceOf(ValidationError);
  });

  it('rejects unknown scopes and empty names', async () => {
    await expect(createApiKey(t.db, { name: 'x', scopes: ['root'] })).rejects.toBeInstanceOf(ValidationError);
    await expect(createApiKey(t.db, { name: ' ', scopes: ['admin'] })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });
});

describe('JWT bearer tokens', () => {
  it('accepts HS256 and RS256 (PEM and JWKS), maps scopes, and rejects bad signatures, expiry and alg confusion', async () => {
    const secret = 'a-shared-secret-of-at-least-32-characters!';
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
    const pem = await exportSPKI(publicKey);
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' };
    const hs = await createJwtVerifier({
      hs256Secret: secret,
      issuer: 'https://id.example',
      audience: 'postbox',
    });
    const rs = await createJwtVerifier({ rs256PublicKey: pem });
    const jwks = await createJwtVerifier({ jwks: { keys: [jwk] } });

    const hsToken = await new SignJWT({ scope: 'events:read other:scope' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setIssuer('https://id.example')
      .setAudience('postbox')
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(secret));
    const alice = await hs(hsToken);
    expect(alice?.id).toBe('jwt:alice');
    expect([...(alice?.scopes ?? [])]).toEqual(['events:read']);

    const rsToken = await new SignJWT({ scopes: ['admin'] })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setSubject('ops')
      .setExpirationTime('5m')
      .sign(privateKey);
    expect((await rs(rsToken))?.id).toBe('jwt:ops');
    expect((await jwks(rsToken))?.id).toBe('jwt:ops');

    const expired = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('late')
      .setIssuer('https://id.example')
      .setAudience('postbox')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode(secret));
    expect(await hs(expired)).toBeUndefined();
    expect(await hs(`${hsToken.slice(0, -2)}xx`)).toBeUndefined();
    expect(await hs(rsToken)).toBeUndefined();
    // An HS256 token signed with the RSA public key as the "secret" must not pass an RS256 verifier.
    const confused = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('mallory')
      .sign(new TextEncoder().encode(pem));
    expect(await rs(confused)).toBeUndefined();
  });
});

describe('authenticator', () => {
  it('requires credentials when enabled and lets everything through as anonymous when disabled', async () => {
    const { key } = await createApiKey(t.db, { name: 'reader', scopes: ['events:read'] });
    const on = createAuthenticator({ enabled: true, db: t.db });
    expect(await on.authenticate({})).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/missing credentials/),
    });
    expect(await on.authenticate({ authorization: `Bearer ${key}` })).toMatchObject({ ok: true });
    expect(await on.authenticate({ apiKey: key })).toMatchObject({ ok: true });
    expect(await on.authenticate({ authorization: 'Bearer pbx_aaaaaaaaaa_bbbb' })).toMatchObject({
      ok: false,
    });
    expect(await on.authenticate({ authorization: 'Bearer eyJ.x.y' })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/no JWT key/),
    });
    const off = createAuthenticator({ enabled: false, db: t.db });
    expect(await off.authenticate({})).toMatchObject({ ok: true, principal: { kind: 'anonymous' } });
  });
});
