/**
 * The two kinds of credentials and how their secrets are kept. An API key is `spk_<id>_<secret>`, a
 * session token `sps_<id>_<secret>`: the id finds the stored record, the secret (32 random bytes)
 * is checked against a salted SHA-256 of it. A slow password hash would add milliseconds to every
 * call for nothing: the secrets are random, not chosen by people, so they cannot be guessed from a
 * dictionary, and SHA-256 of 256 random bits cannot be reversed.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** What a credential string is, once parsed. */
export interface ParsedCredential {
  readonly kind: "api_key" | "session";
  readonly id: string;
  readonly secret: string;
}

const apiKeyPattern = /^spk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
const sessionPattern = /^sps_([0-9a-f]{24})_([A-Za-z0-9_-]{43})$/;

/** Parses an API key or session token; undefined when it is neither. */
export function parseCredential(s: string): ParsedCredential | undefined {
  let m = apiKeyPattern.exec(s);
  if (m?.[1] && m[2]) return { kind: "api_key", id: m[1], secret: m[2] };
  m = sessionPattern.exec(s);
  if (m?.[1] && m[2]) return { kind: "session", id: m[1], secret: m[2] };
  return undefined;
}

/** A freshly made credential: the string to hand out, and what to store. */
export interface NewCredential {
  readonly id: string;
  readonly token: string;
  readonly salt: string;
  readonly hash: string;
}

function make(prefix: string, idBytes: number): NewCredential {
  const id = randomBytes(idBytes).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  const salt = randomBytes(16).toString("hex");
  return { id, token: `${prefix}_${id}_${secret}`, salt, hash: hashSecret(salt, secret) };
}

/** A new API key. */
export function newApiKey(): NewCredential {
  return make("spk", 8);
}

/** A new session token. */
export function newSessionToken(): NewCredential {
  return make("sps", 12);
}

/** Hex SHA-256 of salt and secret. */
export function hashSecret(salt: string, secret: string): string {
  return createHash("sha256").update(salt).update(":").update(secret).digest("hex");
}

/** Compares a secret with its stored salted hash in constant time. */
export function secretMatches(secret: string, salt: string, hash: string): boolean {
  const got = Buffer.from(hashSecret(salt, secret), "hex");
  const want = Buffer.from(hash, "hex");
  return got.length === want.length && timingSafeEqual(got, want);
}
