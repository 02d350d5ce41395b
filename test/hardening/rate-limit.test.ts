import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/graphql/rate-limit.ts';

describe('RateLimiter (token bucket per key)', () => {
  it('allows a burst of the per-minute budget, then refills continuously', () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 60, now: () => now });
    for (let i = 0; i < 60; i++) expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a')).toEqual({ ok: false, retryAfterSeconds: 1 });
    // Other keys have budgets of their own.
    expect(limiter.take('b').ok).toBe(true);
    now += 1000; // one token per second at 60/min
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a').ok).toBe(false);
    now += 60_000;
    for (let i = 0; i < 60; i++) expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a').ok).toBe(false);
  });

  it('says how long until the next token', () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 2, now: () => now });
    limiter.take('a');
    limiter.take('a');
    expect(limiter.take('a')).toEqual({ ok: false, retryAfterSeconds: 30 });
    now += 20_000;
    expect(limiter.take('a')).toEqual({ ok: false, retryAfterSeconds: 10 });
  });

  it('forgets idle keys (they would be full again anyway)', () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 1, now: () => now });
    for (let i = 0; i < 1000; i++) limiter.take(`k${i}`);
    now += 61_000;
    limiter.take('fresh');
    expect((limiter as unknown as { buckets: Map<string, unknown> }).buckets.size).toBe(1);
    expect(limiter.take('k1').ok).toBe(true);
  });
});
