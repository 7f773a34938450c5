/**
 * PostgreSQL itself restarted (`pg_ctlcluster … restart`) while a gateway on it takes a steady
 * stream of submissions: calls during the restart fail with UNAVAILABLE, every acknowledged task
 * and its event are there afterwards, the event log has no gap, and the gateway serves again
 * without a restart of its own. Skipped where the cluster cannot be controlled from here.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { openPostgresStore } from "../src/store/postgres/postgres-store.js";
import { type GatewayClients, gatewayClients } from "./helpers/event-watch.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const run = promisify(execFile);

/** The local cluster's version directory, when this machine runs the test database itself. */
function localCluster(): string | undefined {
  if (new URL(testDatabaseUrl).hostname !== "127.0.0.1" || process.env.SPAGE_TEST_DATABASE_URL)
    return undefined;
  try {
    return readdirSync("/etc/postgresql")[0];
  } catch {
    return undefined;
  }
}

const version = localCluster();

describe("PostgreSQL restarted under load", {
  skip: version ? false : "no local PostgreSQL cluster to restart",
}, () => {
  const schema = freshSchemaName();
  let server: TestServer;
  let clients: GatewayClients;
  after(async () => {
    clients?.close();
    await server?.close();
    await dropSchema(schema);
  });

  it("loses nothing acknowledged and serves again by itself", async () => {
    server = await startTestServer([], { store: await openPostgresStore({ url: testDatabaseUrl, schema }) });
    clients = gatewayClients(server.url);
    const acknowledged: string[] = [];
    const refused: string[] = [];
    let stop = false;
    let n = 0;
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!stop) {
          const id = `under-restart-${n++}`;
          try {
            await clients.api.submitTask({ taskId: id, type: "shell" });
            acknowledged.push(id);
          } catch (err) {
            const ce = ConnectError.from(err);
            assert.equal(
              ce.code,
              Code.Unavailable,
              `a call during the restart is UNAVAILABLE: ${ce.message}`,
            );
            refused.push(id);
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 500));
    await run(
      "pg_ctlcluster",
      ["--skip-systemctl-redirect", version ?? "", "main", "restart", "-m", "fast"],
      {
        timeout: 60_000,
      },
    );
    const restartedAt = acknowledged.length;
    // The gateway recovers on its own: submissions succeed again.
    const until = Date.now() + 30_000;
    while (acknowledged.length < restartedAt + 20 && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await load;
    assert.ok(acknowledged.length >= restartedAt + 20, "submissions succeed again after the restart");
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);

    for (const id of acknowledged) {
      const task = (await clients.api.getTaskStatus({ taskId: id })).task;
      assert.equal(task?.id, id, `acknowledged ${id} is stored`);
    }
    const store = server.gateway.services.deps.store;
    let last = 0n;
    const submitted = new Set<string>();
    for (;;) {
      const page = await store.readEvents({ afterSequence: last, limit: 5000 });
      for (const e of page) {
        assert.equal(e.sequence, last + 1n, "no gap in the event log");
        last = e.sequence;
        if (e.type === "task.submitted") submitted.add(e.taskId);
      }
      if (page.length < 5000) break;
    }
    for (const id of acknowledged) assert.ok(submitted.has(id), `${id}'s event is stored`);
  });
});
