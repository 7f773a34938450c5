/**
 * The single sign-on part of the configuration: which OpenID provider vouches for people, the
 * gateway's client registration there, and how the provider's groups map to scopes. Off unless
 * `--oidc-issuer` is given.
 */
import { type GroupScopes, parseGroupScopes } from "./group-scopes.js";

/** Single sign-on settings, when an issuer is configured. */
export interface OidcSettings {
  /** The issuer URL, exactly as its tokens' `iss` claim says it. */
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Shown on the dashboard's button: "Sign in with <displayName>". */
  readonly displayName: string;
  readonly groupScopes: GroupScopes;
  /** The claim (a dotted path) holding the person's groups or roles. */
  readonly groupsClaim: string;
  /** The `aud` an access token must carry to be accepted as a Bearer credential. */
  readonly audience: string;
  /** Where browsers reach the gateway (the redirect URI's origin); "" takes it from each request. */
  readonly publicUrl: string;
}

/** The serve options of single sign-on, in the shape of config.ts's option table. */
export const oidcServeOptions = [
  {
    flag: "oidc-issuer",
    env: "SPAGE_OIDC_ISSUER",
    kind: "string",
    def: "",
    help: "OpenID provider URL (https, or http on loopback): people sign in to the dashboard with it, and its access tokens are accepted as Bearer credentials",
  },
  {
    flag: "oidc-client-id",
    env: "SPAGE_OIDC_CLIENT_ID",
    kind: "string",
    def: "",
    help: "the gateway's client id at the OpenID provider",
  },
  {
    flag: "oidc-client-secret",
    env: "SPAGE_OIDC_CLIENT_SECRET",
    kind: "string",
    def: "",
    help: "the gateway's client secret at the OpenID provider (prefer the variable: flags show in process lists)",
  },
  {
    flag: "oidc-name",
    env: "SPAGE_OIDC_NAME",
    kind: "string",
    def: "",
    help: "name on the dashboard's \"Sign in with <name>\" button (default: the issuer's host)",
  },
  {
    flag: "oidc-group-scopes",
    env: "SPAGE_OIDC_GROUP_SCOPES",
    kind: "list",
    def: "",
    help: "group=scope[+scope...] entries, comma-separated, e.g. ops=tasks:read+tasks:write,admins=admin: the scopes a person gets from the groups in their token",
  },
  {
    flag: "oidc-groups-claim",
    env: "SPAGE_OIDC_GROUPS_CLAIM",
    kind: "string",
    def: "groups",
    help: "claim holding a person's groups or roles; a dotted path reaches into objects (realm_access.roles)",
  },
  {
    flag: "oidc-audience",
    env: "SPAGE_OIDC_AUDIENCE",
    kind: "string",
    def: "",
    help: "audience an access token must name to be accepted as a Bearer credential (default: the client id)",
  },
  {
    flag: "public-url",
    env: "SPAGE_PUBLIC_URL",
    kind: "string",
    def: "",
    help: "URL browsers reach the gateway at, e.g. https://spage.example.com; sign-in redirects come back to <url>/auth/oidc/callback (default: the request's own host)",
  },
] as const;

/**
 * The settings from option values (`str`, `list` read a flag or its variable); undefined when no
 * issuer is set. Returns a message for the person starting the gateway when something is wrong.
 */
export function parseOidcSettings(
  str: (flag: string) => string,
  list: (flag: string) => string[],
): OidcSettings | undefined | { readonly error: string } {
  const issuer = str("oidc-issuer");
  const others = ["oidc-client-id", "oidc-client-secret", "oidc-group-scopes"].filter((f) => str(f) !== "");
  if (issuer === "") {
    return others.length > 0
      ? { error: `--${others[0]} needs --oidc-issuer (env SPAGE_OIDC_ISSUER), the provider it belongs to` }
      : undefined;
  }
  const url = URL.canParse(issuer) ? new URL(issuer) : undefined;
  const loopback = url && ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  if (!url || !(url.protocol === "https:" || (url.protocol === "http:" && loopback))) {
    return {
      error: `invalid --oidc-issuer "${issuer}" (env SPAGE_OIDC_ISSUER): expected an https:// URL (http:// only on loopback)`,
    };
  }
  const clientId = str("oidc-client-id");
  const clientSecret = str("oidc-client-secret");
  if (clientId === "" || clientSecret === "") {
    return {
      error:
        "--oidc-issuer needs --oidc-client-id and --oidc-client-secret (env SPAGE_OIDC_CLIENT_ID, SPAGE_OIDC_CLIENT_SECRET): the gateway's registration at the provider",
    };
  }
  const entries = list("oidc-group-scopes");
  if (entries.length === 0) {
    return {
      error:
        "--oidc-issuer needs --oidc-group-scopes (env SPAGE_OIDC_GROUP_SCOPES), e.g. ops=tasks:read+tasks:write: without it no person gets any scope",
    };
  }
  const groupScopes = parseGroupScopes(entries);
  if (typeof groupScopes === "string") {
    return { error: `invalid --oidc-group-scopes (env SPAGE_OIDC_GROUP_SCOPES): ${groupScopes}` };
  }
  const publicUrl = str("public-url").replace(/\/+$/, "");
  if (publicUrl !== "" && !/^https?:\/\/[^/\s]+$/.test(publicUrl)) {
    return {
      error: `invalid --public-url "${publicUrl}" (env SPAGE_PUBLIC_URL): expected scheme://host[:port] with no path`,
    };
  }
  return {
    issuer,
    clientId,
    clientSecret,
    displayName: str("oidc-name") || url.host,
    groupScopes,
    groupsClaim: str("oidc-groups-claim") || "groups",
    audience: str("oidc-audience") || clientId,
    publicUrl,
  };
}
