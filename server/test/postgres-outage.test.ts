/**
 * A gateway whose PostgreSQL goes away and comes back (the database behind a TCP proxy that cuts
 * and refuses connections, as a restart or a network cut looks to the gateway): while it is gone,
 * /readyz says so and calls fail fast with UNAVAILABLE naming the cause; afterwards the gateway
 * serves again by itself, every acknowledged task is there, and a watcher resumes without a gap.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { openPostgresStore } from "../src/store/postgres/postgres-store.js";
import { type GatewayClients, gatewayClients, watchUntil } from "./helpers/event-watch.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";
import { startTcpProxy, type TcpProxy } from "./helpers/tcp-proxy.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

describe("PostgreSQL unreachable, then back", () => {
  const schema = freshSchemaName();
  let proxy: TcpProxy;
  let server: TestServer;
  let clients: GatewayClients;

  before(async () => {
    const target = new URL(testDatabaseUrl);
    proxy = await startTcpProxy(Number(target.port || 5432), target.hostname);
    const viaProxy = new URL(testDatabaseUrl);
    viaProxy.port = String(proxy.port);
    const store = await openPostgresStore({ url: viaProxy.toString(), schema, poolSize: 4 });
    server = await startTestServer([], { store });
    clients = gatewayClients(server.url);
  });
  after(async () => {
    clients.close();
    await server.close();
    await proxy.close();
    await dropSchema(schema);
  });

  it("fails fast and clearly while the database is gone, and serves again by itself", async () => {
    const acknowledged: string[] = [];
    for (let i = 0; i < 5; i++) {
      await clients.api.submitTask({ taskId: `before-${i}`, type: "shell" });
      acknowledged.push(`before-${i}`);
    }
    const upTo = (await clients.api.listTasks({ limit: 1 })).sequence;

    proxy.block();
    proxy.cut();
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 503, "not ready while the database is gone");
    const started = Date.now();
    await assert.rejects(clients.api.submitTask({ taskId: "during-1", type: "shell" }), (err: unknown) => {
      const ce = ConnectError.from(err);
      return ce.code === Code.Unavailable && /the database is unreachable/.test(ce.rawMessage);
    });
    await assert.rejects(clients.api.getTaskStatus({ taskId: "before-0" }), (err: unknown) => {
      return ConnectError.from(err).code === Code.Unavailable;
    });
    assert.ok(Date.now() - started < 15_000, "calls fail within the connect timeout, not hang");
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200, "the process itself is alive");

    proxy.unblock();
    // Back: the pool opens new connections on the next calls, nothing to restart.
    let back = false;
    for (let i = 0; i < 50 && !back; i++) {
      back = (await fetch(`${server.url}/readyz`)).status === 200;
      if (!back) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(back, "ready again once the database is back");
    await clients.api.submitTask({ taskId: "after-1", type: "shell" });
    acknowledged.push("after-1");
    for (const taskId of acknowledged) {
      assert.equal((await clients.api.getTaskStatus({ taskId })).task?.id, taskId, `${taskId} kept`);
    }
    // A watcher resuming from before the outage sees every event once, in order.
    const events = await watchUntil(clients.api, { afterSequence: upTo - 5n }, (evs) =>
      evs.some((e) => e.taskId === "after-1"),
    );
    const seqs = events.map((e) => e.sequence);
    assert.ok(
      seqs.every((s, i) => i === 0 || s === (seqs[i - 1] ?? 0n) + 1n),
      `gap-free: ${seqs.join(",")}`,
    );
  });
});
