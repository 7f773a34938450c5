/**
 * An identity provider's access tokens as Bearer credentials: a JWT signed by one of the issuer's
 * published keys (its JWKS, fetched once and again when a token names a key not seen yet, so a
 * rotation is picked up), issued by the configured issuer, for the configured audience, and not
 * expired. Its subject becomes the principal and its groups map to scopes as at sign-in. The checks
 * are jose's; this file only turns their errors into messages a caller can act on.
 */
import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from "jose";
import { UnauthenticatedError } from "../../domain/errors.js";
import type { ForeignTokenCheck } from "../authenticator.js";
import { type Principal, personPrincipalName } from "../principal.js";
import { groupsOf, scopesOfGroups } from "./group-scopes.js";
import { messageOf, type OidcIssuer } from "./oidc-issuer.js";

/** How the issuer's keys are fetched. */
export interface AccessTokenOptions {
  /**
   * Least time between two fetches of the JWKS for tokens naming unknown keys: a flood of forged
   * tokens costs the provider at most one fetch per this long.
   */
  readonly jwksCooldownMs?: number;
  /** The clock, in ms (tests may move it). */
  readonly nowMs?: () => number;
}

const jwtShape = /^[\w-]+\.[\w-]+\.[\w-]+$/;

/** Creates the check of the issuer's access tokens. */
export function createAccessTokenCheck(issuer: OidcIssuer, opts: AccessTokenOptions = {}): ForeignTokenCheck {
  const { settings } = issuer;
  const nowMs = opts.nowMs ?? Date.now;
  let keys: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;
  const keySet = () => {
    keys ??= issuer.configuration().then(
      (c) => {
        const uri = c.serverMetadata().jwks_uri;
        if (!uri) throw new Error("its discovery document names no jwks_uri");
        return createRemoteJWKSet(new URL(uri), {
          cooldownDuration: opts.jwksCooldownMs ?? 5_000,
          cacheMaxAge: 10 * 60_000,
        });
      },
      (err: unknown) => {
        keys = undefined;
        throw err;
      },
    );
    return keys;
  };

  const principalOf = (claims: JWTPayload): Principal => {
    const subject = typeof claims.sub === "string" ? claims.sub : "";
    if (subject === "") throw new UnauthenticatedError("access token refused: it has no sub claim");
    const email = typeof claims.email === "string" ? claims.email : "";
    const clientId =
      typeof claims.azp === "string"
        ? claims.azp
        : typeof claims.client_id === "string"
          ? claims.client_id
          : "";
    return {
      name: personPrincipalName(settings.issuer, subject),
      keyId: "",
      sessionId: "",
      clientId,
      scopes: new Set(scopesOfGroups(settings.groupScopes, groupsOf(claims, settings.groupsClaim))),
      ...(claims.exp !== undefined ? { expiresAt: new Date(claims.exp * 1000) } : {}),
      person: { issuer: settings.issuer, subject, email },
    };
  };

  return {
    recognises: (credential) => jwtShape.test(credential),

    // Every call verifies the signature (tens of microseconds): a token is never remembered as
    // good, so one whose key the issuer stopped publishing stops working with the next JWKS read.
    async resolve(token) {
      let jwks: Awaited<ReturnType<typeof keySet>>;
      try {
        jwks = await keySet();
      } catch (err) {
        throw new UnauthenticatedError(`access token not checked: ${messageOf(err)}`);
      }
      let claims: JWTPayload;
      try {
        ({ payload: claims } = await jwtVerify(token, jwks, {
          issuer: settings.issuer,
          audience: settings.audience,
          requiredClaims: ["exp", "sub"],
          currentDate: new Date(nowMs()),
        }));
      } catch (err) {
        throw new UnauthenticatedError(
          `access token refused: ${whyRefused(err, settings.issuer, settings.audience)}`,
        );
      }
      return principalOf(claims);
    },
  };
}

/** What was wrong with a token, in words. */
function whyRefused(err: unknown, issuer: string, audience: string): string {
  if (err instanceof errors.JWTExpired) {
    const exp = err.payload.exp;
    return exp !== undefined ? `it expired at ${new Date(exp * 1000).toISOString()}` : "it has expired";
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === "iss") return `it was issued by "${String(err.payload.iss)}", not by ${issuer}`;
    if (err.claim === "aud")
      return `it is for audience ${JSON.stringify(err.payload.aud)}, not "${audience}"`;
    return `its ${err.claim} claim is invalid (${err.reason})`;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return `its signature does not verify with the key of ${issuer} it names`;
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    return `it is signed with a key ${issuer} does not publish`;
  }
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JOSEError) return err.message;
  return messageOf(err);
}
