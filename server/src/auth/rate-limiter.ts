/**
 * Token buckets per key (a principal and a limit class, or a client address), and counters of open
 * streams per principal. In memory, per gateway: with several replicas each enforces its share.
 * Buckets that have refilled completely carry no information and are dropped, so memory follows the
 * number of recently active callers, not of all callers ever seen.
 */

/** A rate: `perSecond` tokens added each second, at most `burst` saved up. 0 per second: no limit. */
export interface Rate {
  readonly perSecond: number;
  readonly burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
  rate: Rate;
}

/** Most buckets kept before idle (full) ones are swept. */
const sweepAbove = 10_000;

/** Tokens in `b` at time `t`, refilled at `rate` up to its burst. */
function level(b: Bucket, rate: Rate, t: number): number {
  return Math.min(rate.burst, b.tokens + ((t - b.at) / 1000) * rate.perSecond);
}

/** Milliseconds until a bucket holding `tokens` (< 1) has one. */
function waitMs(tokens: number, rate: Rate): number {
  return Math.ceil(((1 - tokens) / rate.perSecond) * 1000);
}

/**
 * Token buckets keyed by string. With several gateways on one store each holds `share` of every
 * rate (1 / the number of gateways), so a client spreading its calls over them gets the configured
 * rate in all, not once per gateway.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private shared = 1;
  private scaled = new WeakMap<Rate, Rate>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** This gateway's share of every rate, above 0 and at most 1. */
  get share(): number {
    return this.shared;
  }

  set share(s: number) {
    const next = Math.min(1, Math.max(0.001, s));
    if (next === this.shared) return;
    this.shared = next;
    this.scaled = new WeakMap();
  }

  /** Takes one token from `key`'s bucket: 0 when allowed, else milliseconds until one is available. */
  take(key: string, configured: Rate): number {
    if (configured.perSecond <= 0) return 0;
    const rate = this.ofShare(configured);
    const b = this.refill(key, rate);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return waitMs(b.tokens, rate);
  }

  /** Milliseconds until `key` has a token (0: it has one now), without taking it. */
  peek(key: string, configured: Rate): number {
    if (configured.perSecond <= 0) return 0;
    const rate = this.ofShare(configured);
    const b = this.buckets.get(key);
    if (!b) return 0;
    const tokens = level(b, rate, this.now());
    return tokens >= 1 ? 0 : waitMs(tokens, rate);
  }

  /** `rate` scaled to this gateway's share (a burst of at least one call). */
  private ofShare(rate: Rate): Rate {
    if (this.shared === 1) return rate;
    let r = this.scaled.get(rate);
    if (!r) {
      r = { perSecond: rate.perSecond * this.shared, burst: Math.max(1, rate.burst * this.shared) };
      this.scaled.set(rate, r);
    }
    return r;
  }

  /** Number of buckets held (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private refill(key: string, rate: Rate): Bucket {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= sweepAbove) this.sweep(t);
      b = { tokens: rate.burst, at: t, rate };
      this.buckets.set(key, b);
      return b;
    }
    b.tokens = level(b, rate, t);
    b.at = t;
    return b;
  }

  /** Drops buckets that would be full by now. */
  private sweep(t: number): void {
    for (const [k, b] of this.buckets) {
      if (level(b, b.rate, t) >= b.rate.burst) this.buckets.delete(k);
    }
  }
}

/** Counts open streams per key against a cap. */
export class StreamCounter {
  private readonly open = new Map<string, number>();

  /** Opens one stream for `key`; false when `max` are already open (0: no cap). */
  acquire(key: string, max: number): boolean {
    const n = this.open.get(key) ?? 0;
    if (max > 0 && n >= max) return false;
    this.open.set(key, n + 1);
    return true;
  }

  /** Closes one stream of `key`. */
  release(key: string): void {
    const n = (this.open.get(key) ?? 1) - 1;
    if (n <= 0) this.open.delete(key);
    else this.open.set(key, n);
  }

  /** Streams open for `key`. */
  count(key: string): number {
    return this.open.get(key) ?? 0;
  }
}
