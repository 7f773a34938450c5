/**
 * The signed-in session: a session token from Authenticate, kept in sessionStorage (per tab, gone
 * when the tab closes; never in a cookie, so no request is sent with it unless this code adds it).
 */
const storageKey = "spage.session";

/** What is kept about the session. */
export interface Session {
  readonly token: string;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
  readonly permissions: readonly string[];
  /** Who signed in through single sign-on (absent for an API key's session). */
  readonly person?: { readonly name: string; readonly email: string };
}

type Listener = (s: Session | undefined) => void;
const listeners = new Set<Listener>();
let reason = "";

/** The current session, if signed in and not expired. */
export function currentSession(): Session | undefined {
  const raw = sessionStorage.getItem(storageKey);
  if (!raw) return undefined;
  try {
    const s = JSON.parse(raw) as Session;
    return s.expiresAt * 1000 > Date.now() ? s : undefined;
  } catch {
    return undefined;
  }
}

/** Stores a new session and tells every listener. */
export function setSession(s: Session): void {
  reason = "";
  sessionStorage.setItem(storageKey, JSON.stringify(s));
  for (const l of listeners) l(s);
}

/** Forgets the session (sign out, or the gateway refused it: `why` is shown on the sign-in form). */
export function clearSession(why = ""): void {
  reason = why;
  sessionStorage.removeItem(storageKey);
  for (const l of listeners) l(undefined);
}

/** Why the last session ended, when the gateway ended it. */
export function signOutReason(): string {
  return reason;
}

/** Calls `l` whenever the session changes; returns the unsubscribe function. */
export function onSession(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}
