/**
 * The brute-force guard: failed authentications are counted per client address in a token bucket,
 * and an address over its budget is refused before its credentials are even looked at. Shared by
 * the auth interceptor (Bearer credentials on any call) and Authenticate (an API key in the body).
 */
import { ResourceExhaustedError } from "../domain/errors.js";
import type { AccessPolicy } from "./access-policy.js";
import type { RateLimiter } from "./rate-limiter.js";

/** How a lockout's message begins (the audit interceptor records these refusals as auth events). */
export const lockoutMessagePrefix = "too many failed authentications";

let lastAddress: string | undefined;
let lastBucket = "";
/** The bucket of `address`; the key of the last address is kept, as most calls repeat it. */
function bucketOf(address: string): string {
  if (address !== lastAddress) {
    lastAddress = address;
    lastBucket = `auth-failures:${address}`;
  }
  return lastBucket;
}

/** Throws RESOURCE_EXHAUSTED (with the wait) when `address` has used up its failed attempts. */
export function refuseIfLockedOut(limiter: RateLimiter, policy: AccessPolicy, address: string): void {
  const wait = limiter.peek(bucketOf(address), policy.authFailureRate);
  if (wait > 0) {
    throw new ResourceExhaustedError(
      `${lockoutMessagePrefix} from ${address}; retry in ${Math.ceil(wait / 1000)} s`,
      { limit: "auth_failures" },
      wait,
    );
  }
}

/** Counts one failed authentication from `address`. */
export function countAuthFailure(limiter: RateLimiter, policy: AccessPolicy, address: string): void {
  limiter.take(bucketOf(address), policy.authFailureRate);
}
