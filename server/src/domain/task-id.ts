/**
 * Generated task ids: UUID version 7 (RFC 9562), a 48-bit millisecond timestamp followed by 74
 * random bits. Ids made later sort later, so new tasks are appended at the end of the id, event
 * and audit indexes instead of landing on random pages of them, and writes touch fewer pages.
 */
import { randomFillSync } from "node:crypto";

const pool = Buffer.alloc(16 * 256);
let next = pool.length;

/** A new UUIDv7 string, e.g. `01927f4e-8a3b-7c2d-9e4f-0123456789ab`. */
export function newTaskId(now = Date.now()): string {
  if (next === pool.length) {
    randomFillSync(pool);
    next = 0;
  }
  const b = pool.subarray(next, next + 16);
  next += 16;
  b.writeUIntBE(now, 0, 6);
  b[6] = 0x70 | ((b[6] ?? 0) & 0x0f);
  b[8] = 0x80 | ((b[8] ?? 0) & 0x3f);
  const hex = b.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
