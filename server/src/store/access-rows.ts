/**
 * Rows of the keys, sessions and audit tables as both backends store them (times in milliseconds,
 * scopes as JSON), and their records.
 */
import type { ApiKeyRecord, AuditRecord, SessionLookup } from "./access-store.js";

export interface KeyRow {
  id: string;
  name: string;
  scopes: string;
  salt: string;
  hash: string;
  created_at: number;
  revoked_at: number | null;
  created_by: string;
}

export interface SessionRow {
  id: string;
  key_id: string | null;
  issuer: string;
  subject: string;
  email: string;
  client_id: string;
  scopes: string;
  salt: string;
  hash: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  key_revoked_at: number | null;
}

export interface AuditRow {
  sequence: number;
  time: number;
  principal: string;
  key_id: string;
  client_address: string;
  method: string;
  task_id: string;
  code: string;
  request_id: string;
  detail: string;
  prev_hash: string;
  hash: string;
}

export const rowToKey = (r: KeyRow): ApiKeyRecord => ({
  id: r.id,
  name: r.name,
  scopes: JSON.parse(r.scopes) as string[],
  salt: r.salt,
  hash: r.hash,
  createdAt: new Date(r.created_at),
  ...(r.revoked_at !== null ? { revokedAt: new Date(r.revoked_at) } : {}),
  createdBy: r.created_by,
});

export const rowToSession = (r: SessionRow): SessionLookup => ({
  id: r.id,
  keyId: r.key_id ?? "",
  ...(r.subject !== "" ? { person: { issuer: r.issuer, subject: r.subject, email: r.email } } : {}),
  clientId: r.client_id,
  scopes: JSON.parse(r.scopes) as string[],
  salt: r.salt,
  hash: r.hash,
  createdAt: new Date(r.created_at),
  expiresAt: new Date(r.expires_at),
  ...(r.revoked_at !== null ? { revokedAt: new Date(r.revoked_at) } : {}),
  ...(r.key_revoked_at !== null ? { keyRevokedAt: new Date(r.key_revoked_at) } : {}),
});

export const rowToAudit = (r: AuditRow): AuditRecord => ({
  sequence: BigInt(r.sequence),
  time: new Date(r.time),
  principal: r.principal,
  keyId: r.key_id,
  clientAddress: r.client_address,
  method: r.method,
  taskId: r.task_id,
  code: r.code,
  requestId: r.request_id,
  detail: r.detail,
  prevHash: r.prev_hash,
  hash: r.hash,
});
