/**
 * Authentication and authorisation of every RPC, from one table (auth/scopes.ts): public methods
 * pass; the others need `Authorization: Bearer <api key or session token>` whose scopes include
 * one the method needs. The methods a Spage core calls also let in callers without credentials
 * where the anonymous-execution policy allows (on the real client address, behind trusted proxies
 * only); what such a caller may then touch is decided by task ownership (domain/task-owner.ts).
 * Failed authentications are limited per client address, so keys cannot be guessed at speed.
 *
 * Over mutual TLS, a call without an Authorization header runs as its connection's client
 * certificate (auth/client-cert.ts) when one was presented; a Bearer header, when sent, wins over
 * the certificate. A certificate that failed verification refuses every call that needs
 * credentials, and is never taken for an anonymous core.
 */
import type { ContextValues, Interceptor } from "@connectrpc/connect";
import { type AccessPolicy, anonymousAllowed } from "../auth/access-policy.js";
import { countAuthFailure, refuseIfLockedOut } from "../auth/auth-failures.js";
import type { Authenticator } from "../auth/authenticator.js";
import type { ClientCertIdentity } from "../auth/client-cert.js";
import { parseCredential } from "../auth/credentials.js";
import type { Principal } from "../auth/principal.js";
import type { RateLimiter } from "../auth/rate-limiter.js";
import { allScopes, type Needs, requirementOf, type Scope } from "../auth/scopes.js";
import { kClaimedKeyId, kClientCert, kPeerAddress, kPrincipal, kViaUntrustedProxy } from "../context-keys.js";
import { PermissionDeniedError, UnauthenticatedError } from "../domain/errors.js";
import { anonymousRule } from "../domain/task-owner.js";
import { rpcNameOf } from "./rpc-name.js";

const openPrincipal: Principal = {
  name: "open",
  keyId: "",
  sessionId: "",
  clientId: "",
  scopes: new Set(allScopes),
};

const anonymousPrincipal: Principal = {
  name: "anonymous",
  keyId: "",
  sessionId: "",
  clientId: "",
  scopes: new Set<Scope>(["execution"]),
};

/**
 * Creates the auth interceptor; place it inside error mapping, outside the rate limiter.
 * `clientCertificates`: the listener asks for client certificates, so a call without credentials
 * is told it may present one.
 */
export function createAuthInterceptor(
  authn: Authenticator,
  limiter: RateLimiter,
  policy: AccessPolicy,
  clientCertificates = false,
): Interceptor {
  const bearer = lastBearer();
  const missing = `missing credentials: send the header "Authorization: Bearer <api key or session token>"${
    clientCertificates ? ", or connect with a client certificate (mutual TLS)" : ""
  }`;
  return (next) => async (req) => {
    const need = requirementOf(req.service.typeName, req.method);
    if (!need) {
      throw new PermissionDeniedError(`${rpcNameOf(req.method)} is not open to any caller`);
    }
    if (need.kind === "public") return next(req);
    if (!policy.enabled) {
      req.contextValues.set(kPrincipal, openPrincipal);
      return next(req);
    }
    const address = req.contextValues.get(kPeerAddress);
    const viaUntrustedProxy = req.contextValues.get(kViaUntrustedProxy);
    const header = req.header.get("authorization");
    const cert = req.contextValues.get(kClientCert);
    let principal: Principal;
    if (
      header === null &&
      cert === undefined &&
      need.kind === "scope" &&
      need.anonymousCore === true &&
      anonymousAllowed(policy, address, viaUntrustedProxy)
    ) {
      principal = anonymousPrincipal;
    } else {
      // Refused attempts are audited with the key id they named (found only when refusing).
      try {
        refuseIfLockedOut(limiter, policy, address);
      } catch (err) {
        claimKeyId(req.contextValues, header === null ? undefined : bearer(header));
        throw err;
      }
      try {
        if (cert?.untrusted || (header === null && cert !== undefined)) {
          principal = certPrincipal(cert);
        } else if (
          header === null &&
          need.kind === "scope" &&
          req.service.typeName === "spage.core.SpageExecution"
        ) {
          throw new UnauthenticatedError(
            noAnonymousCore(rpcNameOf(req.method), need, policy, viaUntrustedProxy),
          );
        } else {
          const got = authenticate(authn, header, bearer, missing);
          principal = got instanceof Promise ? await got : got;
        }
      } catch (err) {
        claimKeyId(req.contextValues, header === null ? undefined : bearer(header));
        countAuthFailure(limiter, policy, address);
        throw err;
      }
    }
    req.contextValues.set(kPrincipal, principal);
    if (need.kind === "scope" && !need.scopes.some((s) => principal.scopes.has(s))) {
      const has = [...principal.scopes].join(", ") || "no scopes";
      throw new PermissionDeniedError(
        `${req.method.name} needs scope ${need.scopes.map((s) => `"${s}"`).join(" or ")}; these credentials have ${has}`,
        { scope: need.scopes.join(",") },
      );
    }
    return next(req);
  };
}

/**
 * The principal of the connection's client certificate; throws UnauthenticatedError when the
 * certificate was refused, matches no entry, or has expired since the connection was made.
 */
function certPrincipal(cert: ClientCertIdentity): Principal {
  const principal = cert.principal;
  if (!principal) throw new UnauthenticatedError(cert.refusal ?? "client certificate refused");
  // A connection outlives its certificate's validity; its calls do not.
  if (principal.expiresAt && principal.expiresAt.getTime() <= Date.now()) {
    throw new UnauthenticatedError(
      `client certificate of ${principal.name} expired at ${principal.expiresAt.toISOString()}; reconnect with a current one`,
    );
  }
  return principal;
}

/** Why a SpageExecution call without credentials is refused, and what to send instead. */
function noAnonymousCore(rpc: string, need: Needs, policy: AccessPolicy, viaUntrustedProxy: boolean): string {
  const scopes = need.scopes.map((s) => `"${s}"`).join(" or ");
  const send = `send "Authorization: Bearer <key or token>" with scope ${scopes}`;
  if (!need.anonymousCore) return `${rpc} needs credentials: ${anonymousRule}; ${send}`;
  if (policy.anonymousExecution === "none") {
    return `${rpc} needs credentials: this gateway lets no Spage core in without them (--anonymous-execution none); ${send}`;
  }
  if (viaUntrustedProxy) {
    return `${rpc} needs credentials: the request came through a proxy this gateway does not trust (--trusted-proxies), so its client may be anywhere; ${send}`;
  }
  return `${rpc} needs credentials: Spage cores are let in without them only from loopback (--anonymous-execution loopback); ${send}`;
}

/**
 * Parses the credential out of a Bearer header, remembering the last header parsed: a client sends
 * the same header on every call, so most calls skip the parsing.
 */
function lastBearer(): (header: string) => string | undefined {
  let last: string | undefined;
  let token: string | undefined;
  return (header) => {
    if (header !== last) {
      last = header;
      token = /^\s*Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    }
    return token;
  };
}

/** Notes on the call the API key id a refused Bearer credential names, if it names one. */
function claimKeyId(values: ContextValues, credential: string | undefined): void {
  const parsed = credential ? parseCredential(credential) : undefined;
  if (parsed?.kind === "api_key") values.set(kClaimedKeyId, parsed.id);
}

/** The principal of the header's credentials; throws UnauthenticatedError saying what is wrong. */
function authenticate(
  authn: Authenticator,
  header: string | null,
  bearer: (header: string) => string | undefined,
  missing: string,
): Principal | Promise<Principal> {
  if (header === null || header.trim() === "") throw new UnauthenticatedError(missing);
  const credential = bearer(header);
  if (!credential) {
    throw new UnauthenticatedError(
      'malformed Authorization header: expected "Bearer <api key or session token>"',
    );
  }
  return authn.resolve(credential);
}
