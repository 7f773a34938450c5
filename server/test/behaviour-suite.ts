/**
 * The protocol behaviour suite: the same assertions, run once per real client (see
 * helpers/suite-clients.ts). Each client covers unary calls of both services, errors with their
 * codes, a server stream with a deadline, and the bidirectional streams where its transport allows.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import { CallError, type SuiteClient, str } from "./helpers/suite-clients.js";

/** Expects `p` to fail with `code`; returns the error for further checks. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<CallError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CallError, `expected a CallError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.message}`);
    return err;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

let counter = 0;
/** A task id unique to this run and client. */
export function uniqueId(client: SuiteClient, what: string): string {
  counter++;
  return `${client.name.replace(/[^A-Za-z0-9]+/g, "-")}-${what}-${process.pid}-${counter}`;
}

/** Registers the behaviour tests for one client, created by `getClient` once the server runs. */
export function behaviourSuite(getClient: () => SuiteClient, opts: { smoke?: boolean } = {}): void {
  it("submits, reads and lists tasks (unary)", async () => {
    const c = getClient();
    const taskId = uniqueId(c, "submit");
    const req = {
      taskId,
      type: "playbook",
      priority: "TASK_PRIORITY_HIGH",
      payload: { playbook: "site.yml", inventory: "hosts.ini" },
      metadata: { owner: "suite" },
    };
    const res = await c.unary(SpageAPI, "SubmitTask", req);
    assert.equal(res.success, true);
    assert.equal(res.taskId, taskId);

    const got = await c.unary(SpageAPI, "GetTaskStatus", { taskId });
    const task = got.task as JsonObject;
    assert.equal(task.id, taskId);
    assert.equal(task.type, "playbook");
    assert.equal(task.status, "TASK_STATUS_PENDING");
    assert.equal(task.priority, "TASK_PRIORITY_HIGH");
    assert.deepEqual(task.payload, { playbook: "site.yml", inventory: "hosts.ini" });
    assert.ok(task.createdAt, "createdAt is set");

    const again = await c.unary(SpageAPI, "SubmitTask", req);
    assert.equal(again.taskId, taskId, "an identical submit is idempotent");

    // An id the gateway generated: sent back with the same contents it is idempotent too.
    const fresh = { type: req.type, priority: req.priority, payload: req.payload, metadata: req.metadata };
    const made = (await c.unary(SpageAPI, "SubmitTask", fresh)).taskId as string;
    assert.notEqual(made, "");
    const resent = await c.unary(SpageAPI, "SubmitTask", { ...fresh, taskId: made });
    assert.equal(resent.taskId, made, "a generated id sent back with the same contents is idempotent");
    await rejectsWith(
      c.unary(SpageAPI, "SubmitTask", { ...fresh, taskId: made, metadata: { owner: "someone else" } }),
      "already_exists",
    );

    const list = await c.unary(SpageAPI, "ListTasks", { limit: 1000, status: "PENDING", type: "playbook" });
    const ids = ((list.tasks as JsonObject[] | undefined) ?? []).map((t) => t.id);
    assert.ok(ids.includes(taskId), "the new task is listed");
    assert.ok(Number(list.total) >= 1);
  });

  it("answers errors with their codes", async () => {
    const c = getClient();
    await rejectsWith(c.unary(SpageAPI, "GetTaskStatus", { taskId: uniqueId(c, "missing") }), "not_found");
    const bad = await rejectsWith(
      c.unary(SpageAPI, "SubmitTask", { payload: { a: "b" } }),
      "invalid_argument",
    );
    // The message arrives intact, ":" and quotes included, whatever the protocol.
    assert.match(bad.message, /invalid type: is required \(e.g. "playbook"\)/, "the error names the field");

    const taskId = uniqueId(c, "conflict");
    await c.unary(SpageAPI, "SubmitTask", { taskId, type: "playbook" });
    await rejectsWith(c.unary(SpageAPI, "SubmitTask", { taskId, type: "other" }), "already_exists");

    const canceled = await c.unary(SpageAPI, "CancelTask", { taskId, reason: "not needed" });
    assert.equal(canceled.success, true);
    const after = await c.unary(SpageExecution, "GetTaskStatus", { taskId });
    assert.equal((after.task as JsonObject).status, "TASK_STATUS_CANCELED");
    await rejectsWith(c.unary(SpageAPI, "CancelTask", { taskId }), "failed_precondition");
    await rejectsWith(c.unary(SpageAPI, "Authenticate", { apiKey: "x" }), "unauthenticated");
  });

  if (opts.smoke) return;

  it("serves SpageExecution and health (unary)", async () => {
    const c = getClient();
    const taskId = uniqueId(c, "run");
    const first = await c.unary(SpageExecution, "RegisterTask", {
      taskId,
      playbook: "site.yml",
      inventory: "inv.yml",
      variables: { env: "prod" },
      engine: "local",
      metadata: { playbook: "site.yml", inventory: "inv.yml", engine: "local" },
    });
    assert.equal(first.success, true);
    // The second, thinner registration a real core sends keeps what the first one set.
    await c.unary(SpageExecution, "RegisterTask", { taskId, playbook: "site.yml" });
    const task = (await c.unary(SpageExecution, "GetTaskStatus", { taskId })).task as JsonObject;
    assert.deepEqual(task.payload, {
      playbook: "site.yml",
      inventory: "inv.yml",
      engine: "local",
      variables: JSON.stringify({ env: "prod" }),
    });

    const exec = await c.unary(SpageExecution, "ExecuteTask", {
      playbook: "deploy.yml",
      priority: "TASK_PRIORITY_CRITICAL",
    });
    assert.ok(str(exec.taskId).length > 0, "an id is generated");
    await rejectsWith(c.unary(SpageExecution, "ExecuteTask", { inventory: "x" }), "invalid_argument");

    for (const service of [SpageExecution, SpageAPI]) {
      const h = await c.unary(service, "HealthCheck", {});
      assert.ok(["healthy", "degraded"].includes(str(h.status)), `status ${str(h.status)}`);
      const metrics = await c.unary(service, "GetMetrics", {});
      assert.ok(Number((metrics.counters as JsonObject).tasks_pending) >= 1);
    }
    const grpcHealth = await c.unary(Health, "Check", { service: "spage.api.SpageAPI" });
    assert.equal(grpcHealth.status, "SERVING");
    await rejectsWith(c.unary(Health, "Check", { service: "no.such.Service" }), "not_found");
  });

  it("streams events live and ends the stream at its deadline (server stream)", async () => {
    const c = getClient();
    const taskId = uniqueId(c, "watch");
    await c.unary(SpageAPI, "SubmitTask", { taskId, type: "playbook" });
    const seen: JsonObject[] = [];
    const stream = c.serverStream(SpageAPI, "WatchEvents", { taskId }, { timeoutMs: 2500 });
    const err = await rejectsWith(
      (async () => {
        for await (const ev of stream) {
          seen.push(ev);
          if (seen.length === 1) await c.unary(SpageAPI, "CancelTask", { taskId, reason: "watch test" });
        }
      })(),
      "deadline_exceeded",
    );
    assert.ok(err);
    assert.deepEqual(
      seen.map((e) => e.type),
      ["task.submitted", "task.status"],
    );
    assert.ok(seen.every((e) => e.taskId === taskId));
    assert.equal(((seen[1]?.data ?? {}) as JsonObject).to, "CANCELED");
    const seq = seen.map((e) => BigInt(str(e.sequence)));
    assert.ok((seq[0] ?? 0n) > 0n && (seq[1] ?? 0n) > (seq[0] ?? 0n), "sequences increase");

    // Resuming after the first event replays exactly the rest.
    const resumed: JsonObject[] = [];
    await rejectsWith(
      (async () => {
        for await (const ev of c.serverStream(
          SpageAPI,
          "WatchEvents",
          { taskId, afterSequence: str(seen[0]?.sequence) },
          { timeoutMs: 800 },
        )) {
          resumed.push(ev);
        }
      })(),
      "deadline_exceeded",
    );
    assert.deepEqual(
      resumed.map((e) => e.sequence),
      [seen[1]?.sequence],
    );
  });

  it("exchanges progress and daemon events (bidi streams)", async (t) => {
    const c = getClient();
    if (!c.bidi) {
      t.skip(`${c.name}: bidirectional streaming needs HTTP/2 (or a full-duplex client)`);
      return;
    }
    const taskId = uniqueId(c, "progress");
    await c.unary(SpageExecution, "RegisterTask", { taskId, playbook: "site.yml" });
    const acks = await c.bidiStream(
      SpageExecution,
      "StreamProgress",
      [
        {
          taskId,
          progress: 0,
          message: "Executing task: ping on web1",
          metadata: { task: "ping", host: "web1", level: "0", status: "running" },
        },
        {
          taskId,
          progress: 100,
          message: "Task ping completed on web1",
          metadata: { task: "ping", host: "web1", level: "-1", status: "completed", duration_ms: "12" },
        },
        { taskId: uniqueId(c, "unknown-run"), progress: 0, message: "x" },
      ],
      { timeoutMs: 10_000 },
    );
    assert.equal(acks.length, 3);
    const meta = acks.map((a) => a.metadata as JsonObject);
    assert.equal(meta[0]?.ack, "true");
    assert.equal(meta[1]?.ack, "true");
    assert.ok(Number(meta[1]?.sequence) > Number(meta[0]?.sequence));
    assert.equal(meta[2]?.ack, "false", "an update for an unknown run is answered, not dropped");
    assert.equal(meta[2]?.code, "not_found");
    const task = (await c.unary(SpageAPI, "GetTaskStatus", { taskId })).task as JsonObject;
    assert.equal(task.status, "TASK_STATUS_RUNNING");

    const replies = await c.bidiStream(
      SpageAPI,
      "StreamEvents",
      [
        // Capacity 0 (draining): connected, but the gateway hands it no tasks.
        {
          id: "1",
          type: "daemon.hello",
          data: { daemon_id: uniqueId(c, "daemon"), hostname: "h", capacity: "0" },
        },
        { id: "2", type: "no.such.type" },
        { id: "3", type: "daemon.hello", data: {} },
        { id: "4", type: "daemon.heartbeat" },
      ],
      { timeoutMs: 10_000 },
    );
    assert.deepEqual(
      replies.map((r) => [r.type, (r.data as JsonObject).ref]),
      [
        ["daemon.welcome", "1"],
        ["error", "2"],
        ["error", "3"],
        ["ack", "4"],
      ],
    );
    assert.match(str(((replies[1]?.data ?? {}) as JsonObject).message), /unknown event type/);
    assert.match(
      str(((replies[2]?.data ?? {}) as JsonObject).message),
      /daemon.hello needs data key\(s\): daemon_id/,
    );
  });
}

export { describe };
