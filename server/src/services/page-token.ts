/**
 * Opaque page tokens for ListTasks: the insertion position of the last task returned, the order, and
 * a fingerprint of the filters, so a token is only accepted with the query that produced it.
 */
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../domain/errors.js";
import type { ListOrder } from "../store/task-store.js";

/** What a token carries. */
interface TokenBody {
  readonly v: 1;
  readonly p: number;
  readonly o: ListOrder;
  readonly f: string;
}

/** Fingerprint of a listing's filters. */
export function filterFingerprint(filters: Record<string, unknown>): string {
  return createHash("sha256").update(JSON.stringify(filters)).digest("base64url").slice(0, 16);
}

/** Encodes a token for the page after `position`. */
export function encodePageToken(position: number, order: ListOrder, fingerprint: string): string {
  const body: TokenBody = { v: 1, p: position, o: order, f: fingerprint };
  return Buffer.from(JSON.stringify(body)).toString("base64url");
}

/** Decodes a token, checking it belongs to this query. */
export function decodePageToken(token: string, order: ListOrder, fingerprint: string): number {
  let body: Partial<TokenBody>;
  try {
    body = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Partial<TokenBody>;
  } catch {
    throw InvalidArgumentError.field("page_token", "is not a token this gateway issued");
  }
  if (body.v !== 1 || typeof body.p !== "number" || !Number.isSafeInteger(body.p)) {
    throw InvalidArgumentError.field("page_token", "is not a token this gateway issued");
  }
  if (body.o !== order || body.f !== fingerprint) {
    throw InvalidArgumentError.field(
      "page_token",
      "was issued for other filters or another order; repeat the query that produced it",
    );
  }
  return body.p;
}
