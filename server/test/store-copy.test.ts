/**
 * `spage-gateway store copy`: a single-machine history made by a real gateway on SQLite (tasks
 * submitted and cancelled, a core's run with progress, API keys and the audit log) moves to an empty
 * PostgreSQL schema with the CLI, and a gateway started on PostgreSQL serves it: the same tasks and
 * events with the same sequences, the audit chain verifiable, the old key accepted, and new tasks
 * and events continuing after the copied ones. A second copy into the now non-empty schema is
 * refused and changes nothing.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { openPostgresStore } from "../src/store/postgres/postgres-store.js";
import { openSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { runCli, show } from "./helpers/cli-run.js";
import { gatewayClients } from "./helpers/event-watch.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";
import { storedEvents } from "./helpers/test-daemon.js";
import { startTestServer } from "./helpers/test-server.js";

describe("store copy from SQLite to PostgreSQL", () => {
  const dir = mkdtempSync(join(tmpdir(), "spage-copy-"));
  const schema = freshSchemaName();
  after(async () => {
    await dropSchema(schema);
    rmSync(dir, { recursive: true, force: true });
  });

  it("moves every task, event, key and audit record, and a gateway on PostgreSQL serves them", async () => {
    // A history made the usual way, on SQLite.
    const sqlite = openSqliteStore({ path: join(dir, "spage.db") });
    const first = await startTestServer(["--auth", "on"], { store: sqlite });
    const c1 = gatewayClients(first.url, first.adminKey);
    for (let i = 0; i < 30; i++) {
      await c1.api.submitTask({ taskId: `old-${i}`, type: "playbook", payload: { playbook: `p${i}.yml` } });
    }
    await c1.api.cancelTask({ taskId: "old-3", reason: "not needed" });
    await c1.exec.registerTask({ taskId: "old-core", playbook: "site.yml" });
    const before = {
      list: (await c1.api.listTasks({ limit: 100 })).tasks.map((t) => [
        t.id,
        t.status,
        t.payload.playbook ?? "",
      ]),
      events: (await storedEvents(c1.api)).map((e) => [e.sequence, e.type, e.taskId]),
    };
    c1.close();
    await first.close();

    const copy = await runCli(["store", "copy", "--from", dir, "--to", testDatabaseUrl, "--schema", schema]);
    assert.equal(copy.code, 0, show(copy));
    assert.match(
      copy.stdout,
      /Copied 31 tasks, \d+ events \(up to sequence \d+\), .* audit records \(chain verified\)/,
    );

    const second = await startTestServer(["--auth", "on"], {
      store: await openPostgresStore({ url: testDatabaseUrl, schema }),
    });
    // The key made on SQLite works here.
    const c2 = gatewayClients(second.url, first.adminKey);
    try {
      const after = {
        list: (await c2.api.listTasks({ limit: 100 })).tasks.map((t) => [
          t.id,
          t.status,
          t.payload.playbook ?? "",
        ]),
        events: (await storedEvents(c2.api)).map((e) => [e.sequence, e.type, e.taskId]),
      };
      assert.deepEqual(after, before, "the same tasks in the same order, the same events and sequences");
      const lastSeq = before.events[before.events.length - 1]?.[0] as bigint;
      await c2.api.submitTask({ taskId: "new-1", type: "playbook" });
      const newest = (await c2.api.listTasks({ limit: 1 })).tasks[0];
      assert.equal(newest?.id, "new-1", "a new task comes after the copied ones");
      const events = await storedEvents(c2.api, "new-1");
      assert.equal(events[0]?.sequence, lastSeq + 1n, "sequences continue after the copied ones");
      const verify = await runCli([
        "audit",
        "verify",
        "--database-url",
        testDatabaseUrl,
        "--database-schema",
        schema,
      ]);
      assert.equal(verify.code, 0, show(verify));
    } finally {
      c2.close();
      await second.close();
    }

    const again = await runCli(["store", "copy", "--from", dir, "--to", testDatabaseUrl, "--schema", schema]);
    assert.equal(again.code, 1, show(again));
    assert.match(again.stderr, new RegExp(`schema "${schema}" already holds data \\(32 tasks`));
  });
});
