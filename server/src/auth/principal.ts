/** Who is calling: the identity every authorised RPC runs as. */
import type { PersonRecord } from "../store/access-store.js";
import type { Scope } from "./scopes.js";

/** An authenticated caller. */
export interface Principal {
  /**
   * "key:<key id>", "person:<issuer>#<subject>" (signed in through an OpenID provider, or calling
   * with its access token), "cert:<kind>:<name>" (a client certificate, by the name its
   * --client-cert-scopes entry matched), "anonymous" (a core allowed without credentials) or "open"
   * (auth is off).
   */
  readonly name: string;
  /** The API key behind the call ("" for anonymous and open). */
  readonly keyId: string;
  /** The session token's id when the call used one, else "". */
  readonly sessionId: string;
  /** The client id given to Authenticate, for session tokens. */
  readonly clientId: string;
  readonly scopes: ReadonlySet<Scope>;
  /** When the credentials stop working (session tokens, access tokens and client certificates). */
  readonly expiresAt?: Date;
  /** The person behind a single sign-on session or an identity provider's access token. */
  readonly person?: PersonRecord;
  /** The client certificate's fingerprint, e.g. `sha256 AB:CD:...` (certificate principals only). */
  readonly certificate?: string;
}

/** The name of the principal of an API key. */
export function keyPrincipalName(keyId: string): string {
  return `key:${keyId}`;
}

/** The name of the principal of a person an OpenID provider vouches for. */
export function personPrincipalName(issuer: string, subject: string): string {
  return `person:${issuer}#${subject}`;
}

/**
 * The detail of an audit record of a call by `principal`: a person's e-mail leads it (the
 * principal names them by issuer and subject, which never change; the e-mail is what people read),
 * and a client certificate's fingerprint (a certificate principal is named by its subject, which a
 * second certificate can share: the fingerprint says which one it was).
 */
export function auditDetailOf(
  principal: Pick<Principal, "person" | "certificate"> | undefined,
  detail: string,
): string {
  const email = principal?.person?.email;
  const lead = email
    ? `email=${email}`
    : principal?.certificate
      ? `client certificate ${principal.certificate}`
      : "";
  if (!lead) return detail;
  return detail === "" ? lead : `${lead}; ${detail}`;
}
