/**
 * Group commit on a real SQLite file: writes of one event-loop turn share a transaction, a write
 * that fails is rolled back alone, and what a write caches per epoch (the audit chain's tip) is
 * read again after a rollback.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import Database from "better-sqlite3";
import { type AuditFields, ChainVerifier } from "../src/domain/audit-chain.js";
import { type AuditRow, rowToAudit } from "../src/store/access-rows.js";
import { GroupCommit } from "../src/store/group-commit.js";
import { createAuditAppender } from "../src/store/sqlite/sqlite-access.js";
import { migrate } from "../src/store/sqlite/sqlite-migrate.js";

const record = (taskId: string): AuditFields => ({
  time: new Date(),
  principal: "key:test",
  keyId: "k1",
  clientAddress: "127.0.0.1",
  method: "spage.api.SpageAPI/SubmitTask",
  taskId,
  code: "ok",
  requestId: `req-${taskId}`,
  detail: "",
});

describe("group commit", () => {
  let dir: string;
  let db: Database.Database;
  const hooks = { commits: [] as boolean[], discards: 0 };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "spage-gc-"));
    db = new Database(join(dir, "gc.db"));
    db.pragma("journal_mode = WAL");
    migrate(db);
    db.exec("CREATE TABLE t (v TEXT NOT NULL UNIQUE)");
    hooks.commits = [];
    hooks.discards = 0;
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const writer = () =>
    new GroupCommit(db, {
      afterCommit: (partial) => hooks.commits.push(partial),
      onDiscard: () => hooks.discards++,
    });
  const values = () =>
    (db.prepare("SELECT v FROM t ORDER BY rowid").all() as { v: string }[]).map((r) => r.v);

  it("commits a turn's writes in one transaction", async () => {
    const w = writer();
    const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
    const got = await Promise.all(["a", "b", "c"].map((v) => w.submit(() => insert.run(v).changes)));
    assert.deepEqual(got, [1, 1, 1]);
    assert.deepEqual(values(), ["a", "b", "c"]);
    assert.deepEqual(hooks.commits, [false], "one commit, nothing rolled back");
  });

  it("rolls back a failing write alone and commits the others, each once", async () => {
    const w = writer();
    const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
    const runs = { a: 0, c: 0 };
    const results = await Promise.allSettled([
      w.submit(() => {
        runs.a++;
        return insert.run("a").changes;
      }),
      w.submit(() => {
        insert.run("b");
        throw new Error("b fails after writing");
      }),
      w.submit(() => {
        runs.c++;
        return insert.run("c").changes;
      }),
    ]);
    assert.equal(results[0]?.status, "fulfilled");
    assert.equal(results[1]?.status, "rejected");
    assert.match(String((results[1] as PromiseRejectedResult).reason), /b fails after writing/);
    assert.equal(results[2]?.status, "fulfilled");
    assert.deepEqual(values(), ["a", "c"], "b's row is gone, a and c are stored once");
    assert.equal(runs.a, 2, "a ran again after the batch was rolled back");
    assert.equal(hooks.discards, 1);
    assert.deepEqual(hooks.commits, [true], "committed with a write rolled back");
  });

  it("rejects a lone failing write and keeps serving", async () => {
    const w = writer();
    const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
    await w.submit(() => insert.run("a"));
    await assert.rejects(
      w.submit(() => insert.run("a")),
      /UNIQUE constraint failed/,
    );
    await w.submit(() => insert.run("b"));
    assert.deepEqual(values(), ["a", "b"]);
    assert.equal(hooks.discards, 1);
  });

  it("keeps the audit chain whole when a write that appended to it is rolled back", async () => {
    const w = writer();
    const append = createAuditAppender(db, () => w.epoch);
    await w.submit(() => append([record("first")]));
    const results = await Promise.allSettled([
      w.submit(() => append([record("a")])),
      w.submit(() => {
        append([record("b")]);
        throw new Error("b fails after appending");
      }),
      w.submit(() => append([record("c")])),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "rejected", "fulfilled"],
    );
    const rows = db.prepare("SELECT * FROM audit_log ORDER BY sequence").all() as AuditRow[];
    assert.deepEqual(
      rows.map((r) => [r.sequence, r.task_id]),
      [
        [1, "first"],
        [2, "a"],
        [3, "c"],
      ],
    );
    const verifier = new ChainVerifier();
    for (const r of rows) {
      verifier.add(rowToAudit(r));
    }
    assert.equal(verifier.broken, undefined, "every link holds");
    assert.equal(verifier.checked, 3);
  });
});
