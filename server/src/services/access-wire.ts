/** Store records of keys and audit events as their wire messages. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ApiKeySchema, AuditEventSchema } from "../../../gen/spage/api/access_pb.js";
import type { ApiKeyRecord, AuditRecord } from "../store/access-store.js";

/** An API key as listed (never its secret or hash). */
export function keyToWire(k: ApiKeyRecord): MessageInitShape<typeof ApiKeySchema> {
  return {
    id: k.id,
    name: k.name,
    scopes: [...k.scopes],
    createdAt: timestampFromDate(k.createdAt),
    ...(k.revokedAt ? { revokedAt: timestampFromDate(k.revokedAt) } : {}),
    createdBy: k.createdBy,
  };
}

/** An audit record as sent. */
export function auditToWire(r: AuditRecord): MessageInitShape<typeof AuditEventSchema> {
  return {
    sequence: r.sequence,
    time: timestampFromDate(r.time),
    principal: r.principal,
    keyId: r.keyId,
    clientAddress: r.clientAddress,
    method: r.method,
    taskId: r.taskId,
    code: r.code,
    requestId: r.requestId,
    detail: r.detail,
    prevHash: r.prevHash,
    hash: r.hash,
  };
}
