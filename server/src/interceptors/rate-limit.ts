/**
 * Per-principal limits: a token bucket per principal and scope class for every call, another for
 * opening streams, and a cap on streams open at once. Over a limit the call ends RESOURCE_EXHAUSTED
 * with the delay after which a retry will pass (google.rpc.RetryInfo and a Retry-After header).
 * Runs after auth, so it knows who is calling; public methods and an open gateway are not limited.
 */
import type { Interceptor } from "@connectrpc/connect";
import type { AccessPolicy } from "../auth/access-policy.js";
import type { Principal } from "../auth/principal.js";
import type { RateLimiter, StreamCounter } from "../auth/rate-limiter.js";
import { requirementOf, type Scope } from "../auth/scopes.js";
import { whenAborted } from "../call-abort.js";
import { kPeerAddress, kPrincipal } from "../context-keys.js";
import { ResourceExhaustedError } from "../domain/errors.js";
import { hookStream, type StreamHook } from "./stream-errors.js";

/** Creates the rate-limit interceptor; place it right inside the auth interceptor. */
export function createRateLimitInterceptor(
  limiter: RateLimiter,
  streams: StreamCounter,
  policy: AccessPolicy,
): Interceptor {
  const keys = bucketKeys();
  return (next) => async (req) => {
    const principal = req.contextValues.get(kPrincipal);
    if (!principal || !policy.enabled) return next(req);
    // Anonymous cores share no identity: each address gets its own buckets.
    const who =
      principal.name === "anonymous" ? `anonymous@${req.contextValues.get(kPeerAddress)}` : principal.name;
    const need = requirementOf(req.service.typeName, req.method);
    const klass = need?.kind === "scope" ? limitClass(need.scopes, principal) : "tasks:read";
    const wait = limiter.take(keys(principal, who, klass), policy.rates[klass]);
    if (wait > 0) {
      throw new ResourceExhaustedError(
        `rate limit of ${policy.rates[klass].perSecond} calls/s for ${klass} exceeded by ${principal.name}; retry in ${wait} ms`,
        { limit: klass },
        wait,
      );
    }
    if (!req.stream && req.method.methodKind === "unary") return next(req);
    const streamWait = limiter.take(keys(principal, who, "streams"), policy.streamRate);
    if (streamWait > 0) {
      throw new ResourceExhaustedError(
        `rate limit of ${policy.streamRate.perSecond} new streams/s exceeded by ${principal.name}; retry in ${streamWait} ms`,
        { limit: "streams" },
        streamWait,
      );
    }
    if (!streams.acquire(who, policy.maxStreamsPerPrincipal)) {
      throw new ResourceExhaustedError(
        `${principal.name} already has ${policy.maxStreamsPerPrincipal} streams open, the most allowed; close one first`,
        { limit: "open_streams" },
        1000,
      );
    }
    const slot = new OpenStreamSlot(streams, who);
    // Also on the call's end: a response stream that is never iterated never runs its finally.
    whenAborted(req, slot);
    try {
      const res = await next(req);
      if (!res.stream) {
        slot.release();
        return res;
      }
      return hookStream(res, slot);
    } catch (err) {
      slot.release();
      throw err;
    }
  };
}

/**
 * A stream's place among its principal's open streams, given back once: when the stream ends, or
 * when the call is aborted or ends without its stream being read. One object is both the stream's
 * hook and the abort's listener.
 */
class OpenStreamSlot implements StreamHook {
  private released = false;

  constructor(
    private readonly streams: StreamCounter,
    private readonly who: string,
  ) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    this.streams.release(this.who);
  }

  onEnd(): void {
    this.release();
  }

  aborted(): void {
    this.release();
  }
}

/** The scope a call is counted against: the first of the method's scopes the caller holds. */
function limitClass(scopes: readonly Scope[], principal: Principal): Scope {
  for (const s of scopes) if (principal.scopes.has(s)) return s;
  return scopes[0] ?? "tasks:read";
}

/**
 * Bucket keys `<who>:<class>`, kept per principal so a caller's calls reuse the same strings.
 * Anonymous callers are told apart by address, so their keys are built each time.
 */
function bucketKeys(): (principal: Principal, who: string, klass: string) => string {
  const byPrincipal = new WeakMap<Principal, Map<string, string>>();
  return (principal, who, klass) => {
    if (who !== principal.name) return `${who}:${klass}`;
    let keys = byPrincipal.get(principal);
    if (!keys) {
      keys = new Map();
      byPrincipal.set(principal, keys);
    }
    let key = keys.get(klass);
    if (key === undefined) {
      key = `${who}:${klass}`;
      keys.set(klass, key);
    }
    return key;
  };
}
