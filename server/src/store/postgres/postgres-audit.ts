/**
 * Appending to the audit log's hash chain on PostgreSQL. The chain's head (last sequence and hash)
 * is one row, `audit_head`, read FOR UPDATE inside the transaction that appends: writers on every
 * gateway sharing the database queue on that row lock, each continues from the head the previous
 * one committed, and a rolled-back append leaves the head as it was. So there is one chain, with no
 * fork and no gap, whatever the number of writers. This is the SQLite store's rule (read the tip
 * inside the write transaction, once per epoch) with the transaction as the epoch: every store call
 * is its own transaction here, so the head is read once per call.
 */
import { type AuditFields, auditHash } from "../../domain/audit-chain.js";
import type { AuditRecord } from "../access-store.js";
import { named, type Queryable } from "./postgres-pool.js";

const headSql = "SELECT sequence, hash FROM audit_head FOR UPDATE";

const appendSql = `WITH appended AS (
  INSERT INTO audit_log (sequence, time, principal, key_id, client_address, method, task_id, code,
                         request_id, detail, prev_hash, hash)
  SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[]))
UPDATE audit_head SET sequence = $13, hash = $14`;

/**
 * Appends records in order after the chain's head; call it inside a transaction (the head stays
 * locked until it ends). Returns the records as stored.
 */
export async function appendAuditRows(
  client: Queryable,
  records: readonly AuditFields[],
): Promise<AuditRecord[]> {
  if (records.length === 0) return [];
  const head = (await client.query<{ sequence: number; hash: string }>(named(headSql))).rows[0];
  if (!head) throw new Error("the audit log's head row is missing");
  let sequence = BigInt(head.sequence);
  let prevHash = head.hash;
  const stored = records.map((r): AuditRecord => {
    sequence++;
    const hash = auditHash(prevHash, sequence, r);
    const record = {
      time: r.time,
      principal: r.principal,
      keyId: r.keyId,
      clientAddress: r.clientAddress,
      method: r.method,
      taskId: r.taskId,
      code: r.code,
      requestId: r.requestId,
      detail: r.detail,
      sequence,
      prevHash,
      hash,
    };
    prevHash = hash;
    return record;
  });
  const column = <T>(pick: (r: AuditRecord) => T) => stored.map(pick);
  await client.query(
    named(appendSql, [
      column((r) => r.sequence.toString()),
      column((r) => r.time.getTime()),
      column((r) => r.principal),
      column((r) => r.keyId),
      column((r) => r.clientAddress),
      column((r) => r.method),
      column((r) => r.taskId),
      column((r) => r.code),
      column((r) => r.requestId),
      column((r) => r.detail),
      column((r) => r.prevHash),
      column((r) => r.hash),
      sequence.toString(),
      prevHash,
    ]),
  );
  return stored;
}
