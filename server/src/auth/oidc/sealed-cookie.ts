/**
 * Small values the browser keeps for the gateway between two requests of a sign-in (the PKCE
 * verifier, state and nonce; then the new session token on its way to the page), sealed with
 * AES-256-GCM so the browser can neither read nor change them. The key is derived from the client
 * secret, which every replica sharing the provider registration has, so a sign-in started on one
 * replica may end on another. Each value is bound to its purpose and carries its own expiry.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

/** Seals and opens values for one purpose. */
export interface CookieSeal {
  /** The sealed form of `value`, valid for `ttlMs`. */
  seal(value: unknown, ttlMs: number): string;
  /** The value sealed by `seal`, or undefined if it was changed, sealed for another purpose, or expired. */
  open<T>(sealed: string): T | undefined;
}

/** Creates the seal of `purpose`, keyed by `secret`. */
export function createCookieSeal(
  secret: string,
  purpose: string,
  nowMs: () => number = Date.now,
): CookieSeal {
  const key = Buffer.from(hkdfSync("sha256", secret, "spage-gateway sealed cookie", purpose, 32));
  const aad = Buffer.from(purpose);
  return {
    seal(value, ttlMs) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", key, iv).setAAD(aad);
      const body = Buffer.concat([
        cipher.update(JSON.stringify({ v: value, exp: nowMs() + ttlMs })),
        cipher.final(),
      ]);
      return Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url");
    },
    open<T>(sealed: string): T | undefined {
      const raw = Buffer.from(sealed, "base64url");
      if (raw.length < 29) return undefined;
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12)).setAAD(aad);
        decipher.setAuthTag(raw.subarray(12, 28));
        const text = Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString();
        const { v, exp } = JSON.parse(text) as { v: T; exp: number };
        return exp > nowMs() ? v : undefined;
      } catch {
        return undefined;
      }
    },
  };
}
