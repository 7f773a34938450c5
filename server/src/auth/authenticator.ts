/**
 * Turns credentials into a Principal, and API keys into session tokens. Every check reads the
 * store, so a revoked key or token stops working at once on every gateway sharing the database.
 * What never changes about a credential once checked (its secret matched the stored hash, its key,
 * scopes and expiry) is remembered per credential string, so a repeated call costs one small read
 * of its revocation times instead of a full lookup and a hash.
 */
import { UnauthenticatedError } from "../domain/errors.js";
import type { AccessStore, PersonRecord, Revocation } from "../store/access-store.js";
import { newSessionToken, parseCredential, secretMatches } from "./credentials.js";
import { keyPrincipalName, type Principal, personPrincipalName } from "./principal.js";
import { isScope, type Scope } from "./scopes.js";

/** Options of the authenticator. */
export interface AuthenticatorOptions {
  /** Lifetime of a session token. */
  readonly tokenTtlMs: number;
  /** The clock (tests may move it). */
  readonly now?: () => Date;
  /**
   * Checks a credential that is neither an API key nor a session token: an identity provider's
   * access token (auth/oidc/access-tokens.ts). Unset: such credentials are malformed.
   */
  readonly foreignToken?: ForeignTokenCheck;
}

/** Recognises and checks credentials issued by someone else than this gateway. */
export interface ForeignTokenCheck {
  /** Whether the credential has this kind's shape (e.g. a JWT's three dotted parts). */
  recognises(credential: string): boolean;
  /** Its principal; rejects with an UnauthenticatedError saying why not. */
  resolve(credential: string): Promise<Principal>;
}

/** A session token just issued. */
export interface IssuedSession {
  readonly token: string;
  readonly expiresAt: Date;
  readonly principal: Principal;
}

/** Resolves credentials and issues sessions. */
export interface Authenticator {
  /**
   * The principal behind an API key or session token; throws (or rejects with) an
   * UnauthenticatedError saying why not. Answers a credential checked before at once, without a
   * promise, when the store reads in process or its revocation was already read in this turn.
   */
  resolve(credential: string): Principal | Promise<Principal>;
  /** Exchanges an API key for a session token with the key's scopes. */
  issueSession(apiKey: string, clientId: string): Promise<IssuedSession>;
  /** Issues a session token for a person an OpenID provider signed in, with the mapped scopes. */
  issuePersonSession(
    person: PersonRecord,
    scopes: readonly Scope[],
    clientId: string,
  ): Promise<IssuedSession>;
}

const scopeSet = (scopes: readonly string[]): ReadonlySet<Scope> => new Set(scopes.filter(isScope));
const iso = (d: Date) => d.toISOString();

/** Credentials remembered as verified; the oldest is forgotten past this many. */
const maxVerified = 10_000;

/** A credential whose secret matched: what the store said then, none of which can change. */
interface Verified {
  readonly kind: "api_key" | "session";
  readonly id: string;
  readonly principal: Principal;
}

/** A revocation read of this turn: still pending, or its answer. */
type TurnRead =
  | { readonly done: false; readonly pending: Promise<Revocation | undefined> }
  | { readonly done: true; readonly value: Revocation | undefined };

/** Creates the authenticator over the store. */
export function createAuthenticator(store: AccessStore, opts: AuthenticatorOptions): Authenticator {
  const now = opts.now ?? (() => new Date());
  const nowMs = opts.now ? () => now().getTime() : Date.now;
  const verified = new Map<string, Verified>();
  const remember = (credential: string, v: Verified) => {
    if (verified.size >= maxVerified) {
      const oldest = verified.keys().next();
      if (!oldest.done) verified.delete(oldest.value);
    }
    verified.set(credential, v);
  };

  // One revocation read per credential per event-loop turn: a busy turn authenticates hundreds of
  // calls of the same token, and each read costs tens of microseconds. The reads are forgotten at
  // the end of the turn, so a revocation committed before a call's turn began is always seen:
  // every call that arrives after a revocation was acknowledged is refused.
  // Once a read has answered, later calls of the same turn take its answer without a promise; a
  // store that reads in process answers the turn's first call at once too. Calls that arrive
  // together (all the streams of one HTTP/2 read) come before any promise could settle, so with a
  // store that must wait, each of them waits on the turn's one read.
  const thisTurn = new Map<Verified, TurnRead>();
  const clearTurn = () => thisTurn.clear();
  const revocationOf = (v: Verified): TurnRead => {
    let r = thisTurn.get(v);
    if (!r) {
      const got = store.revocation(v.kind, v.id);
      if (thisTurn.size === 0) setImmediate(clearTurn);
      if (!(got instanceof Promise)) {
        r = { done: true, value: got };
        thisTurn.set(v, r);
        return r;
      }
      const pending = got;
      const read: TurnRead = { done: false, pending };
      r = read;
      thisTurn.set(v, read);
      pending.then(
        (value) => {
          if (thisTurn.get(v) === read) thisTurn.set(v, { done: true, value });
        },
        () => {}, // the callers awaiting `pending` see the failure
      );
    }
    return r;
  };

  /** Throws, saying why, if a credential whose secret matched was revoked or has expired. */
  const refuseIfEnded = (v: Verified, r: Revocation | undefined): Principal => {
    if (!r)
      throw new UnauthenticatedError(v.kind === "api_key" ? "invalid API key" : "invalid session token");
    if (v.kind === "api_key") {
      if (r.revokedAt) throw new UnauthenticatedError(`API key ${v.id} was revoked at ${iso(r.revokedAt)}`);
      return v.principal;
    }
    if (r.keyRevokedAt) {
      throw new UnauthenticatedError(
        `the API key of this session token was revoked at ${iso(r.keyRevokedAt)}`,
      );
    }
    if (r.revokedAt) throw new UnauthenticatedError(`session token was revoked at ${iso(r.revokedAt)}`);
    const expiresAt = v.principal.expiresAt;
    if (expiresAt && expiresAt.getTime() <= nowMs()) {
      throw new UnauthenticatedError(
        v.principal.person
          ? `session token expired at ${iso(expiresAt)}; sign in again`
          : `session token expired at ${iso(expiresAt)}; call Authenticate with the API key for a new one`,
      );
    }
    return v.principal;
  };

  const keyPrincipal = async (id: string, secret: string): Promise<Principal> => {
    const key = await store.getApiKey(id);
    if (!key || !secretMatches(secret, key.salt, key.hash)) {
      throw new UnauthenticatedError("invalid API key");
    }
    const principal: Principal = {
      name: keyPrincipalName(key.id),
      keyId: key.id,
      sessionId: "",
      clientId: "",
      scopes: scopeSet(key.scopes),
    };
    return refuseIfEnded(
      { kind: "api_key", id, principal },
      key.revokedAt ? { revokedAt: key.revokedAt } : {},
    );
  };

  /** Resolves a credential not verified before: reads its record and checks its secret. */
  const resolveNew = async (credential: string): Promise<Principal> => {
    const parsed = parseCredential(credential);
    if (!parsed && opts.foreignToken?.recognises(credential)) {
      // Not remembered here: an access token is checked against its own expiry on every call,
      // and the check caches what it can (the issuer's keys).
      return opts.foreignToken.resolve(credential);
    }
    if (!parsed) {
      throw new UnauthenticatedError(
        "malformed credentials: expected an API key (spk_...) or a session token (sps_...)",
      );
    }
    if (parsed.kind === "api_key") {
      const principal = await keyPrincipal(parsed.id, parsed.secret);
      remember(credential, { kind: "api_key", id: parsed.id, principal });
      return principal;
    }
    const s = await store.getSession(parsed.id);
    if (!s || !secretMatches(parsed.secret, s.salt, s.hash)) {
      throw new UnauthenticatedError("invalid session token");
    }
    const principal: Principal = {
      name: s.person ? personPrincipalName(s.person.issuer, s.person.subject) : keyPrincipalName(s.keyId),
      keyId: s.keyId,
      sessionId: s.id,
      clientId: s.clientId,
      scopes: scopeSet(s.scopes),
      expiresAt: s.expiresAt,
      ...(s.person ? { person: s.person } : {}),
    };
    // Checked only once the secret matched: remembering a wrong one would let it in later.
    const v: Verified = { kind: "session", id: s.id, principal };
    remember(credential, v);
    return refuseIfEnded(v, s);
  };

  /** Stores a new session token for `principal`, with its scopes, key or person. */
  const issue = async (principal: Principal, clientId: string): Promise<IssuedSession> => {
    const created = now();
    const expiresAt = new Date(created.getTime() + opts.tokenTtlMs);
    const token = newSessionToken();
    await store.createSession({
      id: token.id,
      keyId: principal.keyId,
      ...(principal.person ? { person: principal.person } : {}),
      clientId,
      scopes: [...principal.scopes],
      salt: token.salt,
      hash: token.hash,
      createdAt: created,
      expiresAt,
    });
    return {
      token: token.token,
      expiresAt,
      principal: { ...principal, sessionId: token.id, clientId, expiresAt },
    };
  };

  return {
    resolve(credential) {
      const known = verified.get(credential);
      if (!known) return resolveNew(credential);
      const r = revocationOf(known);
      return r.done ? refuseIfEnded(known, r.value) : r.pending.then((v) => refuseIfEnded(known, v));
    },

    async issueSession(apiKey, clientId) {
      const parsed = parseCredential(apiKey);
      if (parsed?.kind !== "api_key") {
        throw new UnauthenticatedError("invalid API key: expected spk_<id>_<secret>");
      }
      return issue(await keyPrincipal(parsed.id, parsed.secret), clientId);
    },

    issuePersonSession(person, scopes, clientId) {
      const principal: Principal = {
        name: personPrincipalName(person.issuer, person.subject),
        keyId: "",
        sessionId: "",
        clientId,
        scopes: new Set(scopes),
        person,
      };
      return issue(principal, clientId);
    },
  };
}
