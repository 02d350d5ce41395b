import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createJwtVerifier } from '../../src/auth/jwt.ts';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const key = new TextEncoder().encode(SECRET);

function token(claims: Record<string, unknown>): SignJWT {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' });
}

describe('JWT claims', () => {
  it('a token without exp is refused, however broad its scope', async () => {
    const verify = await createJwtVerifier({ hs256Secret: SECRET });
    const forever = await token({ scope: 'admin' }).setSubject('ops').setIssuedAt().sign(key);
    expect(await verify(forever)).toBeUndefined();
  });

  it('a token without sub, or with a numeric sub, is not a principal', async () => {
    const verify = await createJwtVerifier({ hs256Secret: SECRET });
    const noSub = await token({ scope: 'admin' }).setIssuedAt().setExpirationTime('5m').sign(key);
    const numericSub = await token({ scope: 'admin', sub: 42 })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(key);
    expect(await verify(noSub)).toBeUndefined();
    expect(await verify(numericSub)).toBeUndefined();
  });

  it('with a maximum token age, a token issued longer ago (or without iat) is refused', async () => {
    const verify = await createJwtVerifier({ hs256Secret: SECRET, maxTokenAgeSeconds: 600 });
    const now = Math.floor(Date.now() / 1000);
    const old = await token({ scope: 'admin' })
      .setSubject('ops')
      .setIssuedAt(now - 3600)
      .setExpirationTime(now + 3600)
      .sign(key);
    const noIat = await token({ scope: 'admin' }).setSubject('ops').setExpirationTime('5m').sign(key);
    const fresh = await token({ scope: 'admin' })
      .setSubject('ops')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(key);
    expect(await verify(old)).toBeUndefined();
    expect(await verify(noIat)).toBeUndefined();
    expect((await verify(fresh))?.id).toBe('jwt:ops');
  });

  it('a valid token maps to its principal with its expiry', async () => {
    const verify = await createJwtVerifier({ hs256Secret: SECRET });
    const valid = await token({ scope: 'events:read' })
      .setSubject('ada')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(key);
    const principal = await verify(valid);
    expect(principal?.id).toBe('jwt:ada');
    expect(principal?.expiresAt).toBeInstanceOf(Date);
  });
});
