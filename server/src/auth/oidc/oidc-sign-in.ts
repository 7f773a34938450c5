/**
 * Signing a person in through the OpenID provider: the authorization code flow with PKCE, state
 * and nonce (all checked by openid-client), then a gateway session token with the scopes their
 * groups map to. Between the two legs the browser keeps the verifier, state and nonce in a sealed
 * cookie, so any replica can finish a sign-in another one started. HTTP glue is in
 * http/oidc-routes.ts.
 */
import * as client from "openid-client";
import type { Authenticator, IssuedSession } from "../authenticator.js";
import { groupsOf, scopesOfGroups } from "./group-scopes.js";
import { messageOf, type OidcIssuer } from "./oidc-issuer.js";
import { createCookieSeal } from "./sealed-cookie.js";

/** How long a person has to finish signing in at the provider. */
export const signInTtlMs = 10 * 60_000;

/** What the browser keeps between the two legs. */
interface Pending {
  readonly verifier: string;
  readonly state: string;
  readonly nonce: string;
  readonly redirectUri: string;
  readonly returnTo: string;
}

/** A person the provider vouched for. */
export interface SignedInPerson {
  readonly issuer: string;
  readonly subject: string;
  readonly email: string;
  /** A name to greet them with: name, preferred_username, e-mail or subject. */
  readonly displayName: string;
  readonly groups: readonly string[];
}

/** How a sign-in ended. */
export type SignInOutcome =
  | {
      readonly kind: "signed-in";
      readonly person: SignedInPerson;
      readonly session: IssuedSession;
      readonly returnTo: string;
    }
  /** The provider vouched for them, but none of their groups is mapped to a scope. */
  | { readonly kind: "no-scopes"; readonly person: SignedInPerson }
  /** Nobody was signed in: a failed or forged callback, or the provider could not be reached. */
  | { readonly kind: "failed"; readonly status: 400 | 502; readonly message: string };

/** The two legs of a sign-in. */
export interface OidcSignIn {
  readonly displayName: string;
  /** Where to send the browser, and the sealed cookie value to set. */
  start(redirectUri: string, returnTo: string): Promise<{ url: URL; pending: string }>;
  /** Finishes at the callback URL the provider sent the browser to. */
  finish(callback: URL, pending: string | undefined): Promise<SignInOutcome>;
}

/** Creates the sign-in of `issuer`, issuing sessions through `authn`. */
export function createOidcSignIn(issuer: OidcIssuer, authn: Authenticator): OidcSignIn {
  const { settings } = issuer;
  const seal = createCookieSeal(settings.clientSecret, "oidc sign-in");
  return {
    displayName: settings.displayName,

    async start(redirectUri, returnTo) {
      const config = await issuer.configuration();
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: scopesToAsk(config),
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: "S256",
        state,
        nonce,
      });
      const p: Pending = { verifier, state, nonce, redirectUri, returnTo };
      return { url, pending: seal.seal(p, signInTtlMs) };
    },

    async finish(callback, sealed) {
      const error = callback.searchParams.get("error");
      if (error) {
        const description = callback.searchParams.get("error_description");
        return failed(
          400,
          `the provider refused the sign-in: ${error}${description ? ` (${description})` : ""}`,
        );
      }
      const p = sealed === undefined ? undefined : seal.open<Pending>(sealed);
      if (!p) {
        return failed(
          400,
          "this sign-in was not started here, or took longer than 10 minutes; start again from the dashboard",
        );
      }
      let config: client.Configuration;
      try {
        config = await issuer.configuration();
      } catch (err) {
        return failed(502, messageOf(err));
      }
      let claims: Record<string, unknown>;
      let accessToken: string;
      try {
        // The redirect URI must match the one of the first leg exactly, whatever host was used.
        const current = new URL(p.redirectUri);
        current.search = callback.search;
        const tokens = await client.authorizationCodeGrant(config, current, {
          pkceCodeVerifier: p.verifier,
          expectedState: p.state,
          expectedNonce: p.nonce,
          idTokenExpected: true,
        });
        claims = { ...(tokens.claims() ?? {}) };
        accessToken = tokens.access_token;
      } catch (err) {
        return failed(400, `the sign-in could not be completed: ${messageOf(err)}`);
      }
      const subject = String(claims.sub ?? "");
      // Many providers put groups only in the userinfo answer, not in the identity token.
      if (groupsOf(claims, settings.groupsClaim).length === 0 || !claims.email) {
        try {
          claims = { ...(await client.fetchUserInfo(config, accessToken, subject)), ...claims };
        } catch {
          // The identity token's claims are all there is.
        }
      }
      const groups = groupsOf(claims, settings.groupsClaim);
      const email = typeof claims.email === "string" ? claims.email : "";
      const person: SignedInPerson = {
        issuer: settings.issuer,
        subject,
        email,
        displayName: firstString(claims.name, claims.preferred_username, email, subject),
        groups,
      };
      const scopes = scopesOfGroups(settings.groupScopes, groups);
      if (scopes.length === 0) return { kind: "no-scopes", person };
      const session = await authn.issuePersonSession(
        { issuer: settings.issuer, subject, email },
        scopes,
        "dashboard",
      );
      return { kind: "signed-in", person, session, returnTo: p.returnTo };
    },
  };
}

/**
 * The OAuth scopes a sign-in asks for: who the person is, and their groups where the provider
 * offers a `groups` scope (many release the claim only when it is asked for).
 */
function scopesToAsk(config: client.Configuration): string {
  const offered = config.serverMetadata().scopes_supported ?? [];
  return ["openid", "email", "profile", ...(offered.includes("groups") ? ["groups"] : [])].join(" ");
}

const failed = (status: 400 | 502, message: string): SignInOutcome => ({ kind: "failed", status, message });

function firstString(...values: unknown[]): string {
  for (const v of values) if (typeof v === "string" && v !== "") return v;
  return "";
}
