/**
 * The SQLite half of AccessStore: keys, sessions and the audit log, on the same connection and
 * group commit as the task store, so an acknowledged key, revocation or audit record is on disk.
 */
import type Database from "better-sqlite3";
import { type AuditFields, auditHash, genesisHash } from "../../domain/audit-chain.js";
import {
  type AuditRow,
  type KeyRow,
  rowToAudit,
  rowToKey,
  rowToSession,
  type SessionRow,
} from "../access-rows.js";
import type { AccessStore, AuditQuery, AuditRecord, SessionRecord } from "../access-store.js";
import type { GroupCommit } from "../group-commit.js";

/**
 * Appends records to the audit chain; call it inside a write transaction. It reads the chain's tip
 * there, once per `epoch` of the group commit (a transaction holds the write lock, so nothing else
 * appends during one), so the chain continues from what is committed, also when another process
 * (a `keys` command on the same file) appended in between.
 */
export function createAuditAppender(
  db: Database.Database,
  epoch: () => number,
): (records: readonly AuditFields[]) => AuditRecord[] {
  const lastAudit = db.prepare("SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1");
  const insertAudit = db.prepare(
    `INSERT INTO audit_log (sequence, time, principal, key_id, client_address, method, task_id, code,
                            request_id, detail, prev_hash, hash)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  // The tip as of `tipEpoch`: the last record this connection appended in that epoch.
  let tipEpoch = -1;
  let tipSequence = 0;
  let tipHash = genesisHash;
  return (records) => {
    if (tipEpoch !== epoch()) {
      const last = lastAudit.get() as { sequence: number; hash: string } | undefined;
      tipSequence = last?.sequence ?? 0;
      tipHash = last?.hash ?? genesisHash;
      tipEpoch = epoch();
    }
    return records.map((r) => {
      const sequence = tipSequence + 1;
      const prev = tipHash;
      const hash = auditHash(prev, BigInt(sequence), r);
      insertAudit.run(
        sequence,
        r.time.getTime(),
        r.principal,
        r.keyId,
        r.clientAddress,
        r.method,
        r.taskId,
        r.code,
        r.requestId,
        r.detail,
        prev,
        hash,
      );
      tipSequence = sequence;
      tipHash = hash;
      // Spelled out: a spread of `r` plus three more properties cost as much as the insert.
      return {
        time: r.time,
        principal: r.principal,
        keyId: r.keyId,
        clientAddress: r.clientAddress,
        method: r.method,
        taskId: r.taskId,
        code: r.code,
        requestId: r.requestId,
        detail: r.detail,
        sequence: BigInt(sequence),
        prevHash: prev,
        hash,
      };
    });
  };
}

/** Creates the AccessStore methods on an open, migrated database. */
export function createSqliteAccess(
  db: Database.Database,
  writer: GroupCommit,
  appendAuditRows: (records: readonly AuditFields[]) => AuditRecord[],
): AccessStore {
  const stmt = {
    insertKey: db.prepare(
      `INSERT INTO api_keys (id, name, scopes, salt, hash, created_at, revoked_at, created_by)
       VALUES (@id, @name, @scopes, @salt, @hash, @created_at, @revoked_at, @created_by)`,
    ),
    keyById: db.prepare("SELECT * FROM api_keys WHERE id = ?"),
    keys: db.prepare("SELECT * FROM api_keys WHERE @all = 1 OR revoked_at IS NULL ORDER BY created_at, id"),
    countKeys: db.prepare("SELECT COUNT(*) AS n FROM api_keys"),
    revokeKey: db.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
    revokeSessionsOfKey: db.prepare(
      "UPDATE sessions SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
    ),
    insertSession: db.prepare(
      `INSERT INTO sessions (id, key_id, client_id, scopes, salt, hash, created_at, expires_at, revoked_at,
                             issuer, subject, email)
       VALUES (@id, @key_id, @client_id, @scopes, @salt, @hash, @created_at, @expires_at, NULL,
               @issuer, @subject, @email)`,
    ),
    sessionById: db.prepare(
      `SELECT s.*, k.revoked_at AS key_revoked_at FROM sessions s LEFT JOIN api_keys k ON k.id = s.key_id
       WHERE s.id = ?`,
    ),
    keyRevocation: db.prepare("SELECT revoked_at FROM api_keys WHERE id = ?").raw(),
    sessionRevocation: db
      .prepare(
        "SELECT s.revoked_at, k.revoked_at FROM sessions s LEFT JOIN api_keys k ON k.id = s.key_id WHERE s.id = ?",
      )
      .raw(),
    revokeSession: db.prepare(
      "UPDATE sessions SET revoked_at = @at WHERE id = @id AND revoked_at IS NULL AND expires_at > @at",
    ),
    revokePersonSessions: db.prepare(
      `UPDATE sessions SET revoked_at = @at
       WHERE subject = @subject AND (@issuer = '' OR issuer = @issuer) AND subject <> ''
         AND revoked_at IS NULL AND expires_at > @at`,
    ),
    deleteExpired: db.prepare("DELETE FROM sessions WHERE expires_at < ?"),
  };
  const auditShapes = new Map<string, Database.Statement>();

  return {
    createApiKey(k) {
      return writer.submit(() => {
        stmt.insertKey.run({
          id: k.id,
          name: k.name,
          scopes: JSON.stringify(k.scopes),
          salt: k.salt,
          hash: k.hash,
          created_at: k.createdAt.getTime(),
          revoked_at: k.revokedAt?.getTime() ?? null,
          created_by: k.createdBy,
        });
      }, "createApiKey");
    },

    async getApiKey(id) {
      const row = stmt.keyById.get(id) as KeyRow | undefined;
      return row && rowToKey(row);
    },

    async listApiKeys(includeRevoked) {
      return (stmt.keys.all({ all: includeRevoked ? 1 : 0 }) as KeyRow[]).map(rowToKey);
    },

    async countApiKeys() {
      return (stmt.countKeys.get() as { n: number }).n;
    },

    revokeApiKey(id, at) {
      return writer.submit(() => {
        stmt.revokeKey.run(at.getTime(), id);
        stmt.revokeSessionsOfKey.run(at.getTime(), id);
        const row = stmt.keyById.get(id) as KeyRow | undefined;
        return row && rowToKey(row);
      }, "revokeApiKey");
    },

    createSession(s: SessionRecord) {
      return writer.submit(() => {
        stmt.insertSession.run({
          id: s.id,
          key_id: s.keyId === "" ? null : s.keyId,
          issuer: s.person?.issuer ?? "",
          subject: s.person?.subject ?? "",
          email: s.person?.email ?? "",
          client_id: s.clientId,
          scopes: JSON.stringify(s.scopes),
          salt: s.salt,
          hash: s.hash,
          created_at: s.createdAt.getTime(),
          expires_at: s.expiresAt.getTime(),
        });
      }, "createSession");
    },

    async getSession(id) {
      const row = stmt.sessionById.get(id) as SessionRow | undefined;
      return row && rowToSession(row);
    },

    revocation(kind, id) {
      const date = (ms: unknown) => (typeof ms === "number" ? new Date(ms) : undefined);
      if (kind === "api_key") {
        const row = stmt.keyRevocation.get(id) as [number | null] | undefined;
        if (!row) return undefined;
        const revokedAt = date(row[0]);
        return revokedAt ? { revokedAt } : {};
      }
      const row = stmt.sessionRevocation.get(id) as [number | null, number | null] | undefined;
      if (!row) return undefined;
      const revokedAt = date(row[0]);
      const keyRevokedAt = date(row[1]);
      return { ...(revokedAt ? { revokedAt } : {}), ...(keyRevokedAt ? { keyRevokedAt } : {}) };
    },

    revokeSession(id, at) {
      return writer.submit(
        () => stmt.revokeSession.run({ id, at: at.getTime() }).changes > 0,
        "revokeSession",
      );
    },

    revokePersonSessions(issuer, subject, at) {
      return writer.submit(
        () => stmt.revokePersonSessions.run({ issuer, subject, at: at.getTime() }).changes,
        "revokePersonSessions",
      );
    },

    deleteExpiredSessions(before) {
      return writer.submit(() => stmt.deleteExpired.run(before.getTime()).changes, "deleteExpiredSessions");
    },

    appendAudit(records: readonly AuditFields[]) {
      return writer.submit(() => appendAuditRows(records), "appendAudit");
    },

    async listAudit(q: AuditQuery) {
      const where = ["sequence > @after"];
      if (q.principal) where.push("principal = @principal");
      if (q.taskId) where.push("task_id = @task_id");
      const sql = `SELECT * FROM audit_log WHERE ${where.join(" AND ")} ORDER BY sequence LIMIT @limit`;
      let st = auditShapes.get(sql);
      if (!st) {
        st = db.prepare(sql);
        auditShapes.set(sql, st);
      }
      const rows = st.all({
        after: q.afterSequence,
        limit: q.limit,
        principal: q.principal ?? "",
        task_id: q.taskId ?? "",
      }) as AuditRow[];
      return rows.map(rowToAudit);
    },
  };
}
