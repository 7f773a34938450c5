/**
 * Single sign-on from the dashboard's side: whether the gateway offers it (and the provider's name),
 * where to send the browser to sign in, and taking over the session token the gateway's callback
 * left in a cookie only `/auth/oidc/session` receives. The callback marks its redirect with
 * `?signed-in`; the mark is removed from the address at once.
 */
import { type Session, setSession } from "./session.js";

/** What the gateway says of its single sign-on. */
export interface SingleSignOn {
  readonly enabled: boolean;
  readonly name?: string;
}

/** Asks the gateway whether people can sign in through an identity provider. */
export async function singleSignOn(): Promise<SingleSignOn> {
  try {
    const r = await fetch("/auth/oidc", { headers: { accept: "application/json" } });
    return r.ok ? ((await r.json()) as SingleSignOn) : { enabled: false };
  } catch {
    return { enabled: false };
  }
}

/** The address that starts a sign-in, coming back to `route` (a hash route) afterwards. */
export function signInHref(route: string): string {
  return `/auth/oidc/login?return=${encodeURIComponent(route.startsWith("#/") ? route : "")}`;
}

/**
 * After a sign-in's redirect: takes the session over and stores it. Resolves with what went wrong,
 * or "" when there was nothing to take over or it worked.
 */
export async function takeOverSignIn(): Promise<string> {
  const params = new URLSearchParams(location.search);
  if (!params.has("signed-in")) return "";
  params.delete("signed-in");
  const rest = params.toString();
  history.replaceState(null, "", `${location.pathname}${rest ? `?${rest}` : ""}${location.hash}`);
  try {
    const r = await fetch("/auth/oidc/session", { method: "POST", credentials: "same-origin" });
    const body = (await r.json()) as Session & { message?: string };
    if (!r.ok) return body.message ?? `the gateway answered ${r.status}`;
    setSession({
      token: body.token,
      expiresAt: body.expiresAt,
      permissions: body.permissions,
      ...(body.person ? { person: body.person } : {}),
    });
    return "";
  } catch (err) {
    return `the sign-in could not be taken over: ${(err as Error).message}`;
  }
}
