/**
 * The PostgreSQL half of AccessStore: keys, sessions and the audit log, on the same pool as the
 * task store. Each call is one transaction, committed before it resolves, so a revocation made
 * through one gateway is what every gateway sharing the database reads next.
 */
import type { AuditFields } from "../../domain/audit-chain.js";
import {
  type AuditRow,
  type KeyRow,
  rowToAudit,
  rowToKey,
  rowToSession,
  type SessionRow,
} from "../access-rows.js";
import type { AccessStore, AuditQuery, SessionRecord } from "../access-store.js";
import { appendAuditRows } from "./postgres-audit.js";
import { named, namedArray, type PostgresDb } from "./postgres-pool.js";

const keyColumns = "id, name, scopes, salt, hash, created_at, revoked_at, created_by";
const auditColumns =
  "sequence, time, principal, key_id, client_address, method, task_id, code, request_id, detail, prev_hash, hash";

const sql = {
  insertKey: `INSERT INTO api_keys (${keyColumns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
  keyById: `SELECT ${keyColumns} FROM api_keys WHERE id = $1`,
  keys: `SELECT ${keyColumns} FROM api_keys WHERE $1 OR revoked_at IS NULL ORDER BY created_at, id`,
  countKeys: "SELECT count(*) AS n FROM api_keys",
  revokeKey: "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
  revokeSessionsOfKey: "UPDATE sessions SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
  insertSession: `INSERT INTO sessions (id, key_id, client_id, scopes, salt, hash, created_at, expires_at, revoked_at,
                         issuer, subject, email)
   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $11)`,
  sessionById: `SELECT s.id, s.key_id, s.client_id, s.scopes, s.salt, s.hash, s.created_at, s.expires_at, s.revoked_at,
          s.issuer, s.subject, s.email, k.revoked_at AS key_revoked_at
   FROM sessions s LEFT JOIN api_keys k ON k.id = s.key_id WHERE s.id = $1`,
  keyRevocation: "SELECT revoked_at FROM api_keys WHERE id = $1",
  sessionRevocation:
    "SELECT s.revoked_at, k.revoked_at FROM sessions s LEFT JOIN api_keys k ON k.id = s.key_id WHERE s.id = $1",
  revokeSession:
    "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND expires_at > $1",
  revokePersonSessions: `UPDATE sessions SET revoked_at = $1
   WHERE subject = $3 AND ($2 = '' OR issuer = $2) AND subject <> '' AND revoked_at IS NULL AND expires_at > $1`,
  deleteExpired: "DELETE FROM sessions WHERE expires_at < $1",
};

/** Creates the AccessStore methods on an open, migrated database. */
export function createPostgresAccess(db: PostgresDb): AccessStore {
  const date = (ms: unknown) => (typeof ms === "number" ? new Date(ms) : undefined);

  return {
    async createApiKey(k) {
      await db.pool.query(
        named(sql.insertKey, [
          k.id,
          k.name,
          JSON.stringify(k.scopes),
          k.salt,
          k.hash,
          k.createdAt.getTime(),
          k.revokedAt?.getTime() ?? null,
          k.createdBy,
        ]),
      );
    },

    async getApiKey(id) {
      const row = (await db.pool.query<KeyRow>(named(sql.keyById, [id]))).rows[0];
      return row && rowToKey(row);
    },

    async listApiKeys(includeRevoked) {
      return (await db.pool.query<KeyRow>(named(sql.keys, [includeRevoked]))).rows.map(rowToKey);
    },

    async countApiKeys() {
      return (await db.pool.query<{ n: number }>(named(sql.countKeys))).rows[0]?.n ?? 0;
    },

    revokeApiKey(id, at) {
      return db.transaction(async (client) => {
        await client.query(named(sql.revokeKey, [at.getTime(), id]));
        await client.query(named(sql.revokeSessionsOfKey, [at.getTime(), id]));
        const row = (await client.query<KeyRow>(named(sql.keyById, [id]))).rows[0];
        return row && rowToKey(row);
      }, "revokeApiKey");
    },

    async createSession(s: SessionRecord) {
      await db.pool.query(
        named(sql.insertSession, [
          s.id,
          s.keyId === "" ? null : s.keyId,
          s.clientId,
          JSON.stringify(s.scopes),
          s.salt,
          s.hash,
          s.createdAt.getTime(),
          s.expiresAt.getTime(),
          s.person?.issuer ?? "",
          s.person?.subject ?? "",
          s.person?.email ?? "",
        ]),
      );
    },

    async getSession(id) {
      const row = (await db.pool.query<SessionRow>(named(sql.sessionById, [id]))).rows[0];
      return row && rowToSession(row);
    },

    async revocation(kind, id) {
      if (kind === "api_key") {
        const row = (await db.pool.query(namedArray(sql.keyRevocation, [id]))).rows[0];
        if (!row) return undefined;
        const revokedAt = date(row[0]);
        return revokedAt ? { revokedAt } : {};
      }
      const row = (await db.pool.query(namedArray(sql.sessionRevocation, [id]))).rows[0];
      if (!row) return undefined;
      const revokedAt = date(row[0]);
      const keyRevokedAt = date(row[1]);
      return { ...(revokedAt ? { revokedAt } : {}), ...(keyRevokedAt ? { keyRevokedAt } : {}) };
    },

    async revokeSession(id, at) {
      return ((await db.pool.query(named(sql.revokeSession, [at.getTime(), id]))).rowCount ?? 0) > 0;
    },

    async revokePersonSessions(issuer, subject, at) {
      const r = await db.pool.query(named(sql.revokePersonSessions, [at.getTime(), issuer, subject]));
      return r.rowCount ?? 0;
    },

    async deleteExpiredSessions(before) {
      return (await db.pool.query(named(sql.deleteExpired, [before.getTime()]))).rowCount ?? 0;
    },

    appendAudit(records: readonly AuditFields[]) {
      if (records.length === 0) return db.guard(async () => []);
      return db.transaction((client) => appendAuditRows(client, records), "appendAudit");
    },

    async listAudit(q: AuditQuery) {
      const values: unknown[] = [q.afterSequence.toString()];
      const where = ["sequence > $1"];
      if (q.principal) {
        values.push(q.principal);
        where.push(`principal = $${values.length}`);
      }
      if (q.taskId) {
        values.push(q.taskId);
        where.push(`task_id = $${values.length}`);
      }
      values.push(q.limit);
      const text = `SELECT ${auditColumns} FROM audit_log WHERE ${where.join(" AND ")} ORDER BY sequence LIMIT $${values.length}`;
      return (await db.pool.query<AuditRow>(named(text, values))).rows.map(rowToAudit);
    },
  };
}
