/**
 * 1,000 tasks submitted concurrently across three gateways on one PostgreSQL schema, run by ten real
 * agent processes spread over them: each task runs exactly once (one attempt, one process start in
 * all the agents' logs), every task ends COMPLETED, and the event log is gap-free.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { TaskStatus } from "../../gen/spage/core/common_pb.js";
import { openPostgresStore } from "../src/store/postgres/postgres-store.js";
import { type AgentProcess, startAgentProcess } from "./helpers/agent-process.js";
import { type GatewayClients, gatewayClients } from "./helpers/event-watch.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const total = 1000;

describe("1,000 tasks over three gateways and ten agents", () => {
  const schema = freshSchemaName();
  const servers: TestServer[] = [];
  const clients: GatewayClients[] = [];
  const agents: AgentProcess[] = [];
  after(async () => {
    for (const a of agents) await a.cleanup();
    for (const c of clients) c.close();
    for (const s of servers) await s.close(5000);
    await dropSchema(schema);
  });

  it("each task runs exactly once and every one ends; the event log has no gap", async () => {
    for (let i = 0; i < 3; i++) {
      const store = await openPostgresStore({ url: testDatabaseUrl, schema, poolSize: 8 });
      const server = await startTestServer(["--dispatch-poll-ms", "200"], { store });
      servers.push(server);
      clients.push(gatewayClients(server.url));
    }
    for (let i = 0; i < 10; i++) {
      agents.push(
        startAgentProcess({
          endpoint: servers[i % 3]?.url ?? "",
          daemonId: `load-${i}`,
          capacity: 4,
          command: "true",
        }),
      );
    }
    // Ten agent processes compile and start at once on a small machine: their first line may take a while.
    for (const a of agents) await a.waitForLog((l) => l.msg === "connected to the gateway", 60_000);

    const ids = Array.from({ length: total }, (_, i) => `load-${String(i).padStart(4, "0")}`);
    // Submitted concurrently, a third through each gateway, 50 calls in flight.
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        for (;;) {
          const i = next++;
          const id = ids[i];
          if (id === undefined) return;
          await (clients[i % 3] as GatewayClients).api.submitTask({ taskId: id, type: "shell" });
        }
      }),
    );

    const api = (clients[0] as GatewayClients).api;
    const deadline = Date.now() + 150_000;
    let completed = 0;
    for (;;) {
      completed = (await api.listTasks({ status: "COMPLETED", limit: 1 })).total;
      if (completed >= total || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(completed, total, `all ${total} tasks COMPLETED`);

    // One attempt each, and one process start each across every agent's log.
    const starts = new Map<string, number>();
    for (const a of agents) {
      for (const l of a.logs) {
        if (l.msg === "task started") starts.set(String(l.task), (starts.get(String(l.task)) ?? 0) + 1);
      }
    }
    assert.equal(starts.size, total, "every task was started");
    assert.deepEqual(
      [...starts].filter(([, n]) => n !== 1),
      [],
      "no task started twice",
    );
    for (let offset = 0; offset < total; offset += 500) {
      const page = await api.listTasks({ limit: 500, offset, order: 0 });
      for (const t of page.tasks) {
        assert.equal(t.status, TaskStatus.COMPLETED);
        assert.equal(t.attempts.length, 1, `${t.id} has one attempt`);
      }
    }
    const store = servers[0]?.gateway.services.deps.store;
    assert.ok(store);
    let after = 0n;
    let count = 0;
    for (;;) {
      const page = await store.readEvents({ afterSequence: after, limit: 5000 });
      for (const e of page) {
        assert.equal(e.sequence, after + 1n, "the event log has no gap");
        after = e.sequence;
        count++;
      }
      if (page.length < 5000) break;
    }
    assert.ok(count >= total * 4, `submitted, assigned, started and completed for each (${count} events)`);
  });
});
