/**
 * The configured OpenID provider, discovered on first use (not at start: a provider that is down
 * must not keep the gateway from serving keys and cores) and remembered once found. A failed
 * discovery is forgotten, so the next sign-in or access token tries again.
 */
import * as client from "openid-client";
import type { OidcSettings } from "./oidc-settings.js";

/** The provider, as openid-client's configuration of this gateway's client there. */
export interface OidcIssuer {
  readonly settings: OidcSettings;
  /** The discovered configuration; rejects with the reason discovery failed. */
  configuration(): Promise<client.Configuration>;
}

/** Creates the lazily discovered provider of `settings`. */
export function createOidcIssuer(settings: OidcSettings): OidcIssuer {
  let found: Promise<client.Configuration> | undefined;
  return {
    settings,
    configuration() {
      found ??= client
        .discovery(
          new URL(settings.issuer),
          settings.clientId,
          undefined,
          client.ClientSecretBasic(settings.clientSecret),
          // Settings allow http:// only for a provider on loopback (oidc-settings.ts).
          settings.issuer.startsWith("http:") ? { execute: [client.allowInsecureRequests] } : undefined,
        )
        .catch((err: unknown) => {
          found = undefined;
          throw new Error(
            `the OpenID provider ${settings.issuer} could not be discovered: ${messageOf(err)}`,
          );
        });
      return found;
    },
  };
}

/** An error's message, with its cause's where it has one (fetch failures hide the reason there). */
export function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}
