/**
 * Creating, listing and revoking API keys: shared by the admin RPCs and the `keys` command, which
 * works directly on the store (for bootstrapping and recovery).
 */
import { newApiKey } from "../auth/credentials.js";
import { allScopes, isScope } from "../auth/scopes.js";
import { InvalidArgumentError, NotFoundError } from "../domain/errors.js";
import type { AccessStore, ApiKeyRecord } from "../store/access-store.js";

const namePattern = /^[A-Za-z0-9._-](?:[A-Za-z0-9._ -]{0,62}[A-Za-z0-9._-])?$/;

/** A key just created: its record and the full key, shown once. */
export interface CreatedKey {
  readonly record: ApiKeyRecord;
  readonly apiKey: string;
}

/** Checks a key's name and scopes; throws InvalidArgumentError naming each bad field. */
export function validateKeyRequest(name: string, scopes: readonly string[]): void {
  const violations: { field: string; description: string }[] = [];
  if (!namePattern.test(name)) {
    violations.push({
      field: "name",
      description: "required: 1 to 64 characters of letters, digits and . _ - (spaces allowed inside)",
    });
  }
  if (scopes.length === 0) {
    violations.push({ field: "scopes", description: `at least one of ${allScopes.join(", ")}` });
  }
  const unknown = scopes.filter((s) => !isScope(s));
  if (unknown.length > 0) {
    violations.push({
      field: "scopes",
      description: `unknown scope ${unknown.map((s) => JSON.stringify(s)).join(", ")}; known: ${allScopes.join(", ")}`,
    });
  }
  if (violations.length > 0) throw new InvalidArgumentError(violations);
}

/** Creates a key with `scopes` (deduplicated, in the catalog's order). */
export async function createApiKey(
  store: AccessStore,
  name: string,
  scopes: readonly string[],
  createdBy: string,
): Promise<CreatedKey> {
  validateKeyRequest(name, scopes);
  const key = newApiKey();
  const record: ApiKeyRecord = {
    id: key.id,
    name,
    scopes: allScopes.filter((s) => scopes.includes(s)),
    salt: key.salt,
    hash: key.hash,
    createdAt: new Date(),
    createdBy,
  };
  await store.createApiKey(record);
  return { record, apiKey: key.token };
}

/** Revokes a key and its sessions; NotFound when there is no such key. */
export async function revokeApiKey(store: AccessStore, id: string): Promise<ApiKeyRecord> {
  if (id === "") throw InvalidArgumentError.field("id", "required: the id of the key (the part after spk_)");
  const key = await store.revokeApiKey(id, new Date());
  if (!key) throw new NotFoundError(`no API key with id "${id}"`);
  return key;
}
