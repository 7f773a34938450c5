/**
 * First start: a store with no API keys at all gets one admin key with every scope, so the
 * operator can get in. Its secret is printed once, never logged; only a salted hash is stored.
 */

import { createApiKey } from "../services/api-keys.js";
import type { AuditLog } from "../services/audit-log.js";
import type { AccessStore } from "../store/access-store.js";
import { allScopes } from "./scopes.js";

/** The key created, or undefined when the store already had keys. */
export interface BootstrapResult {
  readonly keyId: string;
  readonly apiKey: string;
}

/** Creates the first admin key if the store has never had one. */
export async function bootstrapAdminKey(
  store: AccessStore,
  audit: AuditLog,
): Promise<BootstrapResult | undefined> {
  if ((await store.countApiKeys()) > 0) return undefined;
  const { record, apiKey } = await createApiKey(store, "admin", allScopes, "bootstrap");
  await audit.record({
    principal: "bootstrap",
    keyId: record.id,
    clientAddress: "",
    method: "bootstrap/CreateApiKey",
    taskId: "",
    code: "ok",
    requestId: "",
    detail: `created key ${record.id} "${record.name}" with ${record.scopes.join(",")}`,
  });
  return { keyId: record.id, apiKey };
}

/** The text shown once on the terminal for the bootstrap key. */
export function bootstrapNotice(b: BootstrapResult): string {
  return [
    "",
    "  No API keys existed, so an admin key with every scope was created.",
    "  It is shown only this once (the gateway keeps a salted hash). Store it now:",
    "",
    `    ${b.apiKey}`,
    "",
    '  Use it as "Authorization: Bearer <key>", or exchange it for a session token with Authenticate.',
    "  Create narrower keys with: spage-gateway keys create --name NAME --scopes tasks:read,tasks:write",
    "",
  ].join("\n");
}
