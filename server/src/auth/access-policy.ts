/** The configurable part of access control: whether auth is on, who may call anonymously, limits. */
import type { Rate } from "./rate-limiter.js";
import type { Scope } from "./scopes.js";

/** Who may call SpageExecution without credentials (real Spage cores send none). */
export type AnonymousExecution = "loopback" | "any" | "none";

/** Access settings, from the configuration. */
export interface AccessPolicy {
  /** False: every caller is let in with every scope (a warning is logged at start). */
  readonly enabled: boolean;
  readonly anonymousExecution: AnonymousExecution;
  /** Lifetime of session tokens. */
  readonly tokenTtlMs: number;
  /** Calls per principal, per scope class. */
  readonly rates: Readonly<Record<Scope, Rate>>;
  /** Stream openings per principal. */
  readonly streamRate: Rate;
  /** Open streams per principal (0: no cap). */
  readonly maxStreamsPerPrincipal: number;
  /** Failed authentications per client address. */
  readonly authFailureRate: Rate;
  /**
   * Proxies (CIDRs) whose Forwarded / X-Forwarded-For headers name the real client; such headers
   * from any other peer are not believed, and their request is never anonymous-loopback.
   */
  readonly trustedProxies: readonly string[];
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback(address: string): boolean {
  return address === "::1" || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(address);
}

/**
 * Whether a caller at `address` (the real client address) may call a Spage core's methods without
 * credentials. A request that came through a proxy the gateway does not trust may come from
 * anywhere, so it is never let in as loopback.
 */
export function anonymousAllowed(policy: AccessPolicy, address: string, viaUntrustedProxy: boolean): boolean {
  if (policy.anonymousExecution === "any") return true;
  if (policy.anonymousExecution === "none" || viaUntrustedProxy) return false;
  return isLoopback(address);
}
