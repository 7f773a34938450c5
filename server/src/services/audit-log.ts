/**
 * The audit log: who did what, appended to the store's hash chain. `verifyAuditLog` walks the chain
 * and names the first broken link.
 */
import { type AuditFields, ChainVerifier } from "../domain/audit-chain.js";
import type { AccessStore, AuditRecord } from "../store/access-store.js";

/** Appends audit records. */
export interface AuditLog {
  /** Appends one record; resolves once it is on disk. */
  record(fields: Omit<AuditFields, "time"> & { time?: Date }): Promise<AuditRecord>;
}

/** Creates the audit log over the store. */
export function createAuditLog(store: AccessStore): AuditLog {
  return {
    async record(fields) {
      // Well-formed text only: a lone surrogate (e.g. half an emoji from a client's input) would be
      // hashed as one byte sequence and stored as another, and the record would look altered.
      const [stored] = await store.appendAudit([
        {
          time: fields.time ?? new Date(),
          principal: fields.principal.toWellFormed(),
          keyId: fields.keyId.toWellFormed(),
          clientAddress: fields.clientAddress.toWellFormed(),
          method: fields.method.toWellFormed(),
          taskId: fields.taskId.toWellFormed(),
          code: fields.code.toWellFormed(),
          requestId: fields.requestId.toWellFormed(),
          detail: fields.detail.toWellFormed(),
        },
      ]);
      if (!stored) throw new Error("audit record was not stored");
      return stored;
    },
  };
}

/** The outcome of a verification. */
export interface AuditVerification {
  /** Records whose links checked out. */
  readonly checked: number;
  /** The last good record's sequence and hash (0 and "" for an empty log). */
  readonly lastSequence: bigint;
  readonly lastHash: string;
  /** The first broken link, if any. */
  readonly broken?: { readonly sequence: bigint; readonly reason: string };
}

/** Walks the whole audit log in pages and checks every link. */
export async function verifyAuditLog(store: AccessStore, pageSize = 1000): Promise<AuditVerification> {
  const v = new ChainVerifier();
  let after = 0n;
  let lastHash = "";
  let lastSequence = 0n;
  for (;;) {
    const page = await store.listAudit({ afterSequence: after, limit: pageSize });
    for (const r of page) {
      if (!v.add(r)) {
        return { checked: v.checked, lastSequence, lastHash, ...(v.broken ? { broken: v.broken } : {}) };
      }
      lastSequence = r.sequence;
      lastHash = r.hash;
    }
    const last = page[page.length - 1];
    if (!last || page.length < pageSize) break;
    after = last.sequence;
  }
  return { checked: v.checked, lastSequence, lastHash };
}
