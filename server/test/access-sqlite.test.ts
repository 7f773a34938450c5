/**
 * Runs the AccessStore contract on the SQLite backend, each test on its own database file in a temp
 * dir.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { accessStoreContract } from "./access-contract.js";

function tempDb(): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "spage-access-"));
  return { path: join(dir, "spage.db"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

accessStoreContract("sqlite", async () => {
  const { path, cleanup } = tempDb();
  let store = openSqliteStore({ path });
  return {
    store,
    async reopen() {
      await store.close();
      store = openSqliteStore({ path });
      return store;
    },
    async close() {
      await store.close();
      cleanup();
    },
  };
});
