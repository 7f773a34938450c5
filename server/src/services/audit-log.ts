/** The audit log: who did what, appended to the store's hash chain (domain/audit-chain.ts). */
import type { AuditFields } from "../domain/audit-chain.js";
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
