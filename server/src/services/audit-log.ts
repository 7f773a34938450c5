/** The audit log: who did what, appended to the store's hash chain (domain/audit-chain.ts). */
import type { AuditFields } from "../domain/audit-chain.js";
import type { AccessStore, AuditRecord } from "../store/access-store.js";

/** An audit record before it is stamped: its time defaults to when it is written. */
export type AuditDraft = Omit<AuditFields, "time"> & { time?: Date };

/** Appends audit records. */
export interface AuditLog {
  /** Appends one record; resolves once it is on disk. */
  record(fields: AuditDraft): Promise<AuditRecord>;
  /** Appends several records in one write; resolves once they are on disk. */
  recordMany(fields: readonly AuditDraft[]): Promise<void>;
}

/**
 * Well-formed text only: a lone surrogate (e.g. half an emoji from a client's input) would be
 * hashed as one byte sequence and stored as another, and the record would look altered.
 */
export function wellFormedAudit(fields: AuditDraft): AuditFields {
  return {
    time: fields.time ?? new Date(),
    principal: fields.principal.toWellFormed(),
    keyId: fields.keyId.toWellFormed(),
    clientAddress: fields.clientAddress.toWellFormed(),
    method: fields.method.toWellFormed(),
    taskId: fields.taskId.toWellFormed(),
    code: fields.code.toWellFormed(),
    requestId: fields.requestId.toWellFormed(),
    detail: fields.detail.toWellFormed(),
  };
}

/**
 * The success record of an audited unary call, offered to the store write that completes the call,
 * so the change and its record are committed together (one commit, not two in a row). The audit
 * interceptor creates it; a service whose write took it marks it written once that write has
 * committed, and the interceptor then has nothing left to write.
 */
export class AuditInWrite {
  private done = false;

  constructor(private readonly successFor: (taskId: string) => AuditDraft) {}

  /** The record of this call succeeding on task `taskId`. */
  fields(taskId: string): AuditFields {
    return wellFormedAudit(this.successFor(taskId));
  }

  /** Called once the write that carried `fields()` has committed. */
  markWritten(): void {
    this.done = true;
  }

  /** Whether the record is already in the store. */
  get written(): boolean {
    return this.done;
  }
}

/** Creates the audit log over the store. */
export function createAuditLog(store: AccessStore): AuditLog {
  return {
    async record(fields) {
      const [stored] = await store.appendAudit([wellFormedAudit(fields)]);
      if (!stored) throw new Error("audit record was not stored");
      return stored;
    },
    async recordMany(fields) {
      if (fields.length > 0) await store.appendAudit(fields.map(wellFormedAudit));
    },
  };
}
