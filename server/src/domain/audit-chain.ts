/**
 * The audit log's hash chain. Each record's hash is SHA-256 over the previous record's hash and
 * every field of the record, so altering, inserting or deleting a record breaks every link after
 * it. `verifyChain` walks records in order and names the first broken link.
 */
import { hash } from "node:crypto";

/** What one audit record says. */
export interface AuditFields {
  readonly time: Date;
  readonly principal: string;
  readonly keyId: string;
  readonly clientAddress: string;
  readonly method: string;
  readonly taskId: string;
  readonly code: string;
  readonly requestId: string;
  readonly detail: string;
}

/** The prev_hash of the first record. */
export const genesisHash = "0".repeat(64);

/** Hex SHA-256 of the previous hash, the record's sequence and its fields (length-prefixed). */
export function auditHash(prevHash: string, sequence: bigint, r: AuditFields): string {
  const parts = [
    prevHash,
    sequence.toString(),
    String(r.time.getTime()),
    r.principal,
    r.keyId,
    r.clientAddress,
    r.method,
    r.taskId,
    r.code,
    r.requestId,
    r.detail,
  ];
  // Length prefixes keep field boundaries unambiguous ("ab"+"c" differs from "a"+"bc").
  let text = "";
  for (const p of parts) text += `${Buffer.byteLength(p)}:${p};`;
  return hash("sha256", text, "hex");
}

/** A stored record as the verifier reads it. */
export interface ChainedRecord extends AuditFields {
  readonly sequence: bigint;
  readonly prevHash: string;
  readonly hash: string;
}

/** Where the chain broke, and how. */
export interface ChainBreak {
  readonly sequence: bigint;
  readonly reason: string;
}

/** Incremental verifier: feed records in sequence order; the first break is remembered. */
export class ChainVerifier {
  private prev = genesisHash;
  private expectedSequence = 1n;
  /** Records checked so far. */
  checked = 0;
  /** The first broken link, once found. */
  broken: ChainBreak | undefined;

  /** Checks the next record; returns false once the chain is broken. */
  add(r: ChainedRecord): boolean {
    if (this.broken) return false;
    if (r.sequence !== this.expectedSequence) {
      this.broken = {
        sequence: r.sequence,
        reason: `expected record ${this.expectedSequence} next, found ${r.sequence}: records are missing`,
      };
      return false;
    }
    if (r.prevHash !== this.prev) {
      this.broken = {
        sequence: r.sequence,
        reason:
          "its prev_hash is not the hash of the record before: a record before it was altered or removed",
      };
      return false;
    }
    if (auditHash(r.prevHash, r.sequence, r) !== r.hash) {
      this.broken = {
        sequence: r.sequence,
        reason: "its hash does not match its fields: the record was altered",
      };
      return false;
    }
    this.prev = r.hash;
    this.expectedSequence = r.sequence + 1n;
    this.checked++;
    return true;
  }
}

/** One page of the log as a verifier reads it; `next` 0 when it is the last. */
export interface ChainPage {
  readonly records: readonly ChainedRecord[];
  readonly next: bigint;
}

/** The outcome of a verification. */
export interface ChainVerification {
  /** Records whose links checked out. */
  readonly checked: number;
  /** The last good record's sequence and hash (0 and "" for an empty log). */
  readonly lastSequence: bigint;
  readonly lastHash: string;
  /** The first broken link, if any. */
  readonly broken?: ChainBreak;
}

/** Walks the whole log page by page (`readPage(after)`) and checks every link. */
export async function verifyChain(
  readPage: (after: bigint) => Promise<ChainPage>,
): Promise<ChainVerification> {
  const v = new ChainVerifier();
  let lastSequence = 0n;
  let lastHash = "";
  for (let after = 0n; ; ) {
    const page = await readPage(after);
    for (const r of page.records) {
      if (!v.add(r))
        return { checked: v.checked, lastSequence, lastHash, ...(v.broken ? { broken: v.broken } : {}) };
      lastSequence = r.sequence;
      lastHash = r.hash;
    }
    if (page.next === 0n) return { checked: v.checked, lastSequence, lastHash };
    after = page.next;
  }
}
