/**
 * Opens the store the configuration names: PostgreSQL when a database URL is given, otherwise the
 * embedded SQLite file `spage.db` under the data directory.
 */
import { join } from "node:path";
import type { GatewayStore } from "./gateway-store.js";
import { openPostgresStore, type PostgresStoreLog } from "./postgres/postgres-store.js";
import { openSqliteStore } from "./sqlite/sqlite-store.js";

/** Where the store lives. */
export interface StoreLocation {
  readonly dataDir: string;
  readonly database: { readonly url: string; readonly schema: string; readonly poolSize: number };
}

/** Opens the store; `where` names it for logs and messages (never with a password). */
export async function openStore(
  at: StoreLocation,
  log?: PostgresStoreLog,
): Promise<{ store: GatewayStore; where: string }> {
  const { url, schema, poolSize } = at.database;
  if (url !== "") {
    const store = await openPostgresStore({ url, schema, poolSize, ...(log ? { log } : {}) });
    return { store, where: `${redactUrl(url)} (schema ${schema})` };
  }
  const path = join(at.dataDir, "spage.db");
  return { store: openSqliteStore({ path }), where: path };
}

/** A database URL with its password hidden. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*):[^@]*@/i, "$1:***@");
}
