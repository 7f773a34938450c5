/** Who is calling: the identity every authorised RPC runs as. */
import type { Scope } from "./scopes.js";

/** An authenticated caller. */
export interface Principal {
  /**
   * "key:<key id>", "cert:<kind>:<name>" (a client certificate, by the name its --client-cert-scopes
   * entry matched), "anonymous" (a core allowed without credentials) or "open" (auth is off).
   */
  readonly name: string;
  /** The API key behind the call ("" for anonymous and open). */
  readonly keyId: string;
  /** The session token's id when the call used one, else "". */
  readonly sessionId: string;
  /** The client id given to Authenticate, for session tokens. */
  readonly clientId: string;
  readonly scopes: ReadonlySet<Scope>;
  /** When the credentials stop working (session tokens and client certificates). */
  readonly expiresAt?: Date;
  /** The client certificate's fingerprint, e.g. `sha256 AB:CD:...` (certificate principals only). */
  readonly certificate?: string;
}

/** The name of the principal of an API key. */
export function keyPrincipalName(keyId: string): string {
  return `key:${keyId}`;
}
