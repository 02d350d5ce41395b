/** Options of {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** Sustained requests per minute per key; also the burst a fresh key may spend at once. */
  readonly perMinute: number;
  /** Clock, ms. Default `Date.now` (tests pass their own). */
  readonly now?: () => number;
}

/** Outcome of {@link RateLimiter.take}. */
export type RateLimitVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * A token bucket per key (API key, token subject or client address), in memory.
 *
 * Why not a plugin: `@envelop/rate-limiter` limits individual fields marked with a directive (or a field
 * config), counting field resolutions; Postbox wants one budget per caller for every operation, over HTTP
 * and WebSocket alike, checked before any parsing or database work, answered with HTTP 429. That is a
 * dozen lines of arithmetic, so it lives here.
 *
 * Each key holds up to `perMinute` tokens, refilled continuously at `perMinute` per minute; a request
 * takes one. The limit is per process: N API processes behind a balancer allow up to N × the limit.
 * Memory: one small entry per key seen in the last minute (idle entries are dropped).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMinute: number;
  private readonly now: () => number;
  private lastSweep: number;

  constructor(options: RateLimiterOptions) {
    if (!Number.isInteger(options.perMinute) || options.perMinute < 1) {
      throw new RangeError('perMinute must be a positive integer');
    }
    this.perMinute = options.perMinute;
    this.now = options.now ?? Date.now;
    this.lastSweep = this.now();
  }

  /** The configured requests per minute. */
  get limit(): number {
    return this.perMinute;
  }

  /** Spends one token of `key`'s bucket, or says how long until one is available. */
  take(key: string): RateLimitVerdict {
    const now = this.now();
    this.sweep(now);
    const bucket = this.buckets.get(key) ?? { tokens: this.perMinute, updatedAt: now };
    const refill = ((now - bucket.updatedAt) / 60_000) * this.perMinute;
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + refill);
    bucket.updatedAt = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    const waitMs = Math.round((1 - bucket.tokens) * (60_000 / this.perMinute));
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** Drops buckets idle for a minute or more: they are full again, the same as no entry. */
  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.updatedAt >= 60_000) this.buckets.delete(key);
    }
  }
}
