/**
 * Runs the TaskStore contract on the SQLite backend, each test on its own database file, plus what
 * is particular to SQLite: migrations and the file settings that make writes durable.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { TaskPriority, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { ChainVerifier } from "../src/domain/audit-chain.js";
import { loadMigrations } from "../src/store/sqlite/sqlite-migrate.js";
import { openSqliteStore } from "../src/store/sqlite/sqlite-store.js";
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

  it("upgrades a database from before core-only runs: runs cores registered stay out of the queue", async () => {
    const { path, cleanup } = tempDb();
    try {
      // The schema as migrations 1 to 3 left it, with one submitted and one registered task.
      mkdirSync(dirname(path), { recursive: true });
      const db = new Database(path);
      db.exec(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
      );
      for (const m of loadMigrations().filter((x) => x.version <= 3)) {
        db.exec(m.sql);
        db.prepare("INSERT INTO schema_migrations VALUES (?, ?, 0)").run(m.version, m.name);
      }
      const insert = db.prepare(
        "INSERT INTO tasks (id, type, priority, status, request_hash, created_at, updated_at) VALUES (?, 'playbook', 2, 1, '', 0, 0)",
      );
      const event = db.prepare("INSERT INTO events (type, task_id, created_at) VALUES (?, ?, 0)");
      insert.run("old-submitted");
      event.run("task.submitted", "old-submitted");
      insert.run("old-registered");
      event.run("task.registered", "old-registered");
      event.run("task.registered", "old-registered");
      db.close();

      const store = openSqliteStore({ path });
      try {
        assert.equal((await store.getTask("old-submitted")).record?.task.origin, "api");
        assert.equal((await store.getTask("old-registered")).record?.task.origin, "core");
        assert.deepEqual(
          (await store.pendingQueue(10)).map((r) => r.task.id),
          ["old-submitted"],
        );
      } finally {
        await store.close();
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

  it("commits a created task's audit record with the task, and none for a taken id", async () => {
    const { path, cleanup } = tempDb();
    const store = openSqliteStore({ path });
    try {
      const audit = (taskId: string) => ({
        time: new Date(),
        principal: "key:0123456789abcdef",
        keyId: "0123456789abcdef",
        clientAddress: "127.0.0.1",
        method: "spage.api.SpageAPI/SubmitTask",
        taskId,
        code: "ok",
        requestId: `req-${taskId}`,
        detail: "",
      });
      const task = {
        id: "t1",
        type: "playbook",
        priority: TaskPriority.NORMAL,
        payload: {},
        metadata: {},
        requestHash: "h",
        status: TaskStatus.PENDING,
        timeoutSeconds: 0,
      };
      const event = { type: "task.submitted", taskId: "t1", data: {} };
      const [first, second] = await Promise.all([
        store.createTask(task, event, audit("t1")),
        store.createTask(task, event, audit("t1")),
      ]);
      assert.deepEqual([first?.created, second?.created], [true, false]);
      await store.createTask({ ...task, id: "t2" }, { ...event, taskId: "t2" }, audit("t2"));
      const records = await store.listAudit({ afterSequence: 0n, limit: 10 });
      assert.deepEqual(
        records.map((r) => [r.sequence, r.taskId, r.requestId]),
        [
          [1n, "t1", "req-t1"],
          [2n, "t2", "req-t2"],
        ],
      );
      const v = new ChainVerifier();
      for (const r of records) assert.equal(v.add(r), true, v.broken?.reason);
    } finally {
      await store.close();
      cleanup();
    }
  });
});
