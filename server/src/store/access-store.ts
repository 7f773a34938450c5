/**
 * The access-control half of the store: API keys and session tokens (their secrets only as salted
 * hashes) and the audit log. Kept in the store, not in memory, so that a revocation takes effect at
 * once on every gateway sharing the database. Every backend runs the same contract suite
 * (server/test/access-contract.ts).
 */
import type { AuditFields } from "../domain/audit-chain.js";

/** An API key as stored. */
export interface ApiKeyRecord {
  readonly id: string;
  readonly name: string;
  readonly scopes: readonly string[];
  /** Random salt and hex SHA-256 of salt + secret. */
  readonly salt: string;
  readonly hash: string;
  readonly createdAt: Date;
  readonly revokedAt?: Date;
  /** "bootstrap", "cli" or the id of the key that created it. */
  readonly createdBy: string;
}

/** A person signed in through an OpenID provider, as the provider names them. */
export interface PersonRecord {
  readonly issuer: string;
  readonly subject: string;
  /** The e-mail the identity token carried ("" if none). */
  readonly email: string;
}

/** A session token as stored. */
export interface SessionRecord {
  readonly id: string;
  /** The API key it was made from; "" for a person's session. */
  readonly keyId: string;
  /** The person it was made for, when signed in through an OpenID provider. */
  readonly person?: PersonRecord;
  readonly clientId: string;
  readonly scopes: readonly string[];
  readonly salt: string;
  readonly hash: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly revokedAt?: Date;
}

/** A session read back with its key's revocation folded in. */
export interface SessionLookup extends SessionRecord {
  /** When the session's API key was revoked, if it was. */
  readonly keyRevokedAt?: Date;
}

/** Revocation times of a credential. */
export interface Revocation {
  readonly revokedAt?: Date;
  /** For a session: when its key was revoked. */
  readonly keyRevokedAt?: Date;
}

/** An audit record as stored: the fields plus its place in the chain. */
export interface AuditRecord extends AuditFields {
  readonly sequence: bigint;
  readonly prevHash: string;
  readonly hash: string;
}

/** Which audit records to read. */
export interface AuditQuery {
  readonly afterSequence: bigint;
  readonly limit: number;
  readonly principal?: string;
  readonly taskId?: string;
}

/** Persistence of keys, sessions and the audit log. Safe for concurrent callers. */
export interface AccessStore {
  /** Stores a new key; rejects if the id is taken. */
  createApiKey(key: ApiKeyRecord): Promise<void>;
  /** The key with this id, revoked or not. */
  getApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  /** Keys, oldest first; revoked ones only when asked. */
  listApiKeys(includeRevoked: boolean): Promise<ApiKeyRecord[]>;
  /** Number of keys ever created (revoked ones included). */
  countApiKeys(): Promise<number>;
  /** Revokes a key and its sessions; returns the key as it is now, undefined if unknown. */
  revokeApiKey(id: string, at: Date): Promise<ApiKeyRecord | undefined>;
  /** Stores a new session token. */
  createSession(session: SessionRecord): Promise<void>;
  /** The session with this id, with its key's revocation. */
  getSession(id: string): Promise<SessionLookup | undefined>;
  /**
   * When a key, or a session and its key, were revoked (unset while valid); undefined when unknown.
   * The one read a credential checked before needs on each call: everything else about it is fixed.
   * A store that reads in process (SQLite) answers at once, without a promise; one that must wait
   * for its database returns a promise.
   */
  revocation(
    kind: "api_key" | "session",
    id: string,
  ): Revocation | undefined | Promise<Revocation | undefined>;
  /** Revokes a session; true if it was valid (not revoked, not expired at `at`) before. */
  revokeSession(id: string, at: Date): Promise<boolean>;
  /**
   * Revokes every valid session of a person (of any issuer when `issuer` is ""); returns how many
   * it ended.
   */
  revokePersonSessions(issuer: string, subject: string, at: Date): Promise<number>;
  /** Deletes sessions that expired before `before`; returns how many. */
  deleteExpiredSessions(before: Date): Promise<number>;
  /**
   * Appends audit records in order, chaining each to the last stored one in the same transaction;
   * returns them as stored.
   */
  appendAudit(records: readonly AuditFields[]): Promise<AuditRecord[]>;
  /** Audit records after a sequence, in order. */
  listAudit(query: AuditQuery): Promise<AuditRecord[]>;
}
