/**
 * Two gateways on one PostgreSQL schema, each with its own pool and its own listener, as two
 * replicas behind a load balancer: events written through either reach watchers on both in one
 * sequence order with no gap and no duplicate, a watcher resumes on the other replica exactly, and
 * a task submitted on A is handed to a daemon connected to B (woken by NOTIFY), assigned once; the
 * dependents of a task that ended are decided by both gateways and change once.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Event } from "../../gen/spage/core/common_pb.js";
import { TaskStatus } from "../../gen/spage/core/common_pb.js";
import { openPostgresStore } from "../src/store/postgres/postgres-store.js";
import { type GatewayClients, gatewayClients, watchUntil } from "./helpers/event-watch.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";
import { TestDaemon, waitForTask } from "./helpers/test-daemon.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const timings = ["--sweep-interval-ms", "50", "--dispatch-poll-ms", "5000", "--heartbeat-ms", "200"];

describe("two gateways on one PostgreSQL schema", () => {
  const schema = freshSchemaName();
  let a: TestServer;
  let b: TestServer;
  let ca: GatewayClients;
  let cb: GatewayClients;

  before(async () => {
    a = await startTestServer(timings, { store: await openPostgresStore({ url: testDatabaseUrl, schema }) });
    b = await startTestServer(timings, { store: await openPostgresStore({ url: testDatabaseUrl, schema }) });
    ca = gatewayClients(a.url);
    cb = gatewayClients(b.url);
  });
  after(async () => {
    ca.close();
    cb.close();
    await a.close();
    await b.close();
    await dropSchema(schema);
  });

  const seqs = (events: readonly Event[]) => events.map((e) => e.sequence);
  const gapFree = (list: readonly bigint[]) =>
    list.every((s, i) => i === 0 || s === (list[i - 1] ?? 0n) + 1n);

  it("events written through both reach watchers on both, in one order, gap-free", async () => {
    const start = (await ca.api.listTasks({ limit: 1 })).sequence;
    const n = 60;
    const done = (evs: readonly Event[]) => evs.filter((e) => e.type === "task.submitted").length >= n;
    const watchA = watchUntil(ca.api, { afterSequence: start }, done, 20_000);
    const watchB = watchUntil(cb.api, { afterSequence: start }, done, 20_000);
    await new Promise((r) => setTimeout(r, 100));
    // Both replicas write at once, several calls in flight on each.
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        (i % 2 === 0 ? ca : cb).api.submitTask({
          taskId: `rep-${i}`,
          type: "shell",
          payload: { i: String(i) },
        }),
      ),
    );
    const [onA, onB] = await Promise.all([watchA, watchB]);
    const listA = seqs(onA).slice(0, n);
    const listB = seqs(onB).slice(0, n);
    assert.deepEqual(listA, listB, "both replicas deliver the same sequence list");
    assert.ok(gapFree(listA), `gap-free: ${listA.join(",")}`);
    assert.equal(listA[0], start + 1n);
    assert.equal(new Set(onA.slice(0, n).map((e) => e.taskId)).size, n, "every task's event once");
  });

  it("a watcher that resumes on the other replica continues exactly", async () => {
    const start = (await ca.api.listTasks({ limit: 1 })).sequence;
    for (let i = 0; i < 10; i++) await ca.api.submitTask({ taskId: `resume-${i}`, type: "shell" });
    const first = await watchUntil(ca.api, { afterSequence: start }, (evs) => evs.length >= 5);
    const last = first[4]?.sequence ?? 0n;
    const rest = await watchUntil(cb.api, { afterSequence: last }, (evs) => evs.length >= 5);
    assert.deepEqual(
      [...seqs(first.slice(0, 5)), ...seqs(rest)],
      Array.from({ length: 10 }, (_, i) => start + 1n + BigInt(i)),
    );
  });

  it("a task submitted on A is handed to a daemon on B, once", async () => {
    // The tasks of the tests before stay out of the way.
    const pending = await ca.api.listTasks({ status: "PENDING", limit: 1000 });
    for (const t of pending.tasks) await cb.api.cancelTask({ taskId: t.id, reason: "not this test's" });
    const daemon = await TestDaemon.connect(b.url, { daemonId: "on-b", capacity: 4, heartbeatMs: 200 });
    try {
      const ids = ["cross-1", "cross-2", "cross-3"];
      for (const taskId of ids) await ca.api.submitTask({ taskId, type: "shell" });
      for (const taskId of ids) {
        // The dispatcher's poll is 5 s here: within a second means the commit woke B.
        await daemon.waitFor("task.assigned", (e) => e.data.task_id === taskId, 2000);
        await daemon.ack("task.accepted", { task_id: taskId });
        await daemon.ack("task.started", { task_id: taskId, pid: "1" });
        await daemon.ack("task.completed", { task_id: taskId, exit_code: "0" });
      }
      for (const taskId of ids) {
        const task = await waitForTask(ca.api, taskId, TaskStatus.COMPLETED);
        assert.equal(task.attempts.length, 1, `${taskId} assigned once`);
      }
      // A cancel on A reaches the daemon on B.
      await ca.api.submitTask({ taskId: "cross-cancel", type: "shell" });
      await daemon.waitFor("task.assigned", (e) => e.data.task_id === "cross-cancel", 2000);
      await daemon.ack("task.accepted", { task_id: "cross-cancel" });
      await daemon.ack("task.started", { task_id: "cross-cancel", pid: "1" });
      await waitForTask(ca.api, "cross-cancel", TaskStatus.RUNNING);
      await ca.api.cancelTask({ taskId: "cross-cancel", reason: "from A" });
      await daemon.waitFor("task.cancel", (e) => e.data.task_id === "cross-cancel", 2000);
      await daemon.ack("task.canceled", { task_id: "cross-cancel" });
      await waitForTask(cb.api, "cross-cancel", TaskStatus.CANCELED);
    } finally {
      daemon.close();
      await daemon.ended;
    }
  });

  it("both gateways decide the dependents of a task that ended, and each changes once", async () => {
    const n = 40;
    await ca.api.submitTasks({
      workflowId: "rep-fan",
      tasks: [
        { taskId: "fan-root", type: "fan" },
        ...Array.from({ length: n }, (_, i) => ({
          taskId: `fan-${i}`,
          type: "fan",
          dependsOn: ["fan-root"],
        })),
      ],
    });
    const daemon = await TestDaemon.connect(b.url, {
      daemonId: "fan-daemon",
      capacity: 1000,
      heartbeatMs: 200,
    });
    try {
      await daemon.waitFor("task.assigned", (e) => e.data.task_id === "fan-root", 3000);
      await daemon.ack("task.accepted", { task_id: "fan-root" });
      await daemon.ack("task.started", { task_id: "fan-root", pid: "1" });
      await daemon.ack("task.completed", { task_id: "fan-root", exit_code: "0" });
      // Both gateways hear of the end (one wrote it, the other reads it back) and resolve at once.
      for (let i = 0; i < n; i++) {
        await daemon.waitFor("task.assigned", (e) => e.data.task_id === `fan-${i}`, 5000);
      }
      const events = await watchUntil(
        ca.api,
        { workflowId: "rep-fan", types: ["task.status"] },
        (evs) => evs.filter((e) => e.data.to === "ASSIGNED").length >= n + 1,
        10_000,
      );
      for (let i = 0; i < n; i++) {
        const queued = events.filter((e) => e.taskId === `fan-${i}` && e.data.from === "WAITING");
        assert.deepEqual(
          queued.map((e) => e.data.to),
          ["PENDING"],
          `fan-${i} left WAITING once`,
        );
      }
    } finally {
      daemon.close();
      await daemon.ended;
    }
  });
});

describe("rate limits across gateways on one schema", () => {
  const schema = freshSchemaName();
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
    await dropSchema(schema);
  });

  it("a client spreading calls over two gateways gets the configured burst in all, not twice", async () => {
    const args = ["--auth", "on", "--rate-limits", "tasks:read=1/10"];
    for (let i = 0; i < 2; i++) {
      const store = await openPostgresStore({ url: testDatabaseUrl, schema });
      servers.push(await startTestServer(args, { store }));
    }
    const [a, b] = servers as [TestServer, TestServer];
    // The first gateway counted itself alone when it started; it learns of the second within a
    // renewal (2 s). Wait for both to see two.
    const key = b.adminKey;
    const read = (s: TestServer) =>
      fetch(`${s.url}/spage.api.SpageAPI/ListTasks`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: "{}",
      });
    await new Promise((r) => setTimeout(r, 2500));
    const codes: number[] = [];
    for (let i = 0; i < 20; i++) codes.push((await read(i % 2 === 0 ? a : b)).status);
    const allowed = codes.filter((c) => c === 200).length;
    assert.ok(
      allowed <= 12,
      `at most the burst of 10 (plus refill) across both gateways, got ${allowed}: ${codes.join(",")}`,
    );
    assert.ok(allowed >= 8, `about the burst of 10 across both, got ${allowed}`);
    assert.ok(codes.includes(429), "the rest is refused (resource_exhausted)");
  });

  it("a key revoked through one gateway is refused by the other at once", async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const call = (s: TestServer, method: string, body: object, token: string) =>
      fetch(`${s.url}/spage.api.SpageAPI/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      });
    const made = await call(a, "CreateApiKey", { name: "short-lived", scopes: ["tasks:write"] }, a.adminKey);
    assert.equal(made.status, 200);
    const { key, apiKey } = (await made.json()) as { key: { id: string }; apiKey: string };
    assert.equal((await call(b, "ValidateToken", { token: apiKey }, apiKey)).status, 200, "valid on B");
    assert.equal((await call(a, "RevokeApiKey", { id: key.id }, a.adminKey)).status, 200);
    const refused = await call(b, "SubmitTask", { type: "shell" }, apiKey);
    assert.equal(refused.status, 401, "refused on B right after the revocation on A");
    assert.match(((await refused.json()) as { message: string }).message, /revoked/);
  });
});
