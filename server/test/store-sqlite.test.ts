/**
 * Runs the TaskStore contract on the SQLite backend, each test on its own database file, plus what
 * is particular to SQLite: migrations and the file settings that make writes durable.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { loadMigrations } from "../src/store/sqlite-migrate.js";
import { openSqliteStore } from "../src/store/sqlite-store.js";
import { storeContract } from "./store-contract.js";

function tempDb(): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "spage-store-"));
  return {
    path: join(dir, "nested", "spage.db"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

storeContract("sqlite", async () => {
  const { path, cleanup } = tempDb();
  return { store: openSqliteStore({ path }), reopen: async () => openSqliteStore({ path }), cleanup };
});

describe("SQLite specifics", () => {
  it("runs every migration once, records it, and uses WAL with full sync", async () => {
    const { path, cleanup } = tempDb();
    try {
      await openSqliteStore({ path }).close();
      await openSqliteStore({ path }).close();
      const db = new Database(path, { readonly: true });
      try {
        const applied = db.prepare("SELECT version, name FROM schema_migrations ORDER BY version").all();
        assert.deepEqual(
          applied,
          loadMigrations().map((m) => ({ version: m.version, name: m.name })),
        );
        assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
      } finally {
        db.close();
      }
    } finally {
      cleanup();
    }
  });

  it("refuses a database migrated by a newer gateway", async () => {
    const { path, cleanup } = tempDb();
    try {
      await openSqliteStore({ path }).close();
      const db = new Database(path);
      db.prepare(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '999_future.sql', 0)",
      ).run();
      db.close();
      assert.throws(() => openSqliteStore({ path }), /migrated by a newer gateway/);
    } finally {
      cleanup();
    }
  });
});
