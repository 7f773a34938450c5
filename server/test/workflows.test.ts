/**
 * Dependencies, workflows and batch operations against a real gateway with authentication on, once
 * on SQLite and once on PostgreSQL (a fresh schema of the local server), with scripted daemons on
 * the real daemon channel, connect-node over gRPC, grpc-js and curl with JSON:
 *
 * - a chain waits (WAITING), runs in order, and shows its dependencies and dependents; ListTasks
 *   and WatchEvents filter by its workflow;
 * - a failed dependency skips everything downstream, a canceled one cancels it; a dependency that
 *   had ended already counts at once;
 * - hostile graphs (a task on itself, unknown ids, a cycle through the batch, 10,000 dependencies,
 *   too deep) are refused naming the field and id, and nothing of the request is stored; SubmitTasks
 *   is idempotent, and all or nothing when an id is taken;
 * - CancelTasks by ids and by filter: dry run, the bound per call, per-task results, the refusal of
 *   an unconfirmed match-everything, audit records; 1,000 tasks canceled over curl and grpc-js;
 * - RetryTask, and scopes: a reader key may do none of the batch calls;
 * - the sweep decides a waiting task whose dependency ended without anyone resolving it.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { TaskStatus } from "../../gen/spage/core/common_pb.js";
import { createApiKey } from "../src/services/api-keys.js";
import type { GatewayStore } from "../src/store/gateway-store.js";
import { openPostgresStore } from "../src/store/postgres/postgres-store.js";
import { openSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { watchUntil } from "./helpers/event-watch.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";
import { grpcJsClient } from "./helpers/suite-clients.js";
import {
  DaemonPool,
  fastTimings,
  statusOf,
  storedEvents,
  type TestDaemon,
  waitForTask,
} from "./helpers/test-daemon.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const run = promisify(execFile);

/** The field violations of an invalid_argument error, as "field: description". */
function violations(err: unknown): string[] {
  const e = ConnectError.from(err);
  return (e.findDetails(BadRequestSchema)[0]?.fieldViolations ?? []).map(
    (v) => `${v.field}: ${v.description}`,
  );
}

async function refused(p: Promise<unknown>, code: Code): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    assert.equal(Code[e.code], Code[code], e.message);
    return e;
  }
  assert.fail(`expected ${Code[code]}`);
}

/** A daemon that takes everything it is given and ends it as `outcome(taskId)` says, when told. */
function runner(d: TestDaemon) {
  const assigned: string[] = [];
  d.onEvent((ev) => {
    if (ev.type === "task.assigned") assigned.push(ev.data.task_id ?? "");
  });
  return {
    assigned,
    async finish(taskId: string, ok = true) {
      await d.ack("task.accepted", { task_id: taskId });
      await d.ack("task.started", { task_id: taskId, pid: "1" });
      if (ok) await d.ack("task.completed", { task_id: taskId, exit_code: "0" });
      else await d.ack("task.failed", { task_id: taskId, exit_code: "2", error: "exit status 2" });
    },
    async waitAssigned(taskId: string) {
      await d.waitFor("task.assigned", (ev) => ev.data.task_id === taskId);
    },
  };
}

function workflowSuite(
  label: string,
  openStore: () => Promise<{ store: GatewayStore; drop: () => Promise<void> }>,
) {
  describe(label, () => {
    let server: TestServer;
    let store: GatewayStore;
    let drop: () => Promise<void>;
    let api: Client<typeof SpageAPI>;
    let daemons: DaemonPool;
    let sessions: Http2SessionManager;

    before(async () => {
      ({ store, drop } = await openStore());
      server = await startTestServer(["--auth", "on", "--auth-failures-per-minute", "1000", ...fastTimings], {
        store,
      });
      sessions = new Http2SessionManager(server.url);
      api = createClient(
        SpageAPI,
        createGrpcTransport({
          baseUrl: server.url,
          sessionManager: sessions,
          interceptors: [
            (next) => (req) => {
              req.header.set("authorization", `Bearer ${server.adminKey}`);
              return next(req);
            },
          ],
        }),
      );
      daemons = new DaemonPool(server.url);
    });
    after(async () => {
      sessions.abort();
      await daemons.closeAll();
      await server.close(5000);
      await drop();
    });

    /** A daemon on the channel, with the admin key. */
    const daemon = async (id: string, capacity: number, labels?: string) =>
      daemons.connect({ daemonId: id, capacity, labels, heartbeatMs: 200, token: server.adminKey });

    it("holds a chain WAITING, runs it in order, and shows its dependencies and dependents", async () => {
      const res = await api.submitTasks({
        workflowId: "chain-1",
        tasks: [
          { taskId: "c1-a", type: "chain", payload: { target_labels: "pool=chain" } },
          { taskId: "c1-b", type: "chain", dependsOn: ["c1-a"], payload: { target_labels: "pool=chain" } },
          { taskId: "c1-c", type: "chain", dependsOn: ["c1-b"], payload: { target_labels: "pool=chain" } },
        ],
      });
      assert.deepEqual(res.taskIds, ["c1-a", "c1-b", "c1-c"]);
      assert.equal(res.workflowId, "chain-1");
      assert.equal(res.created, true);
      const b = (await api.getTaskStatus({ taskId: "c1-b" })).task;
      assert.equal(statusOf(b?.status), "WAITING");
      assert.deepEqual(b?.dependsOn, ["c1-a"]);
      assert.deepEqual(b?.dependents, ["c1-c"]);
      assert.equal(b?.workflowId, "chain-1");
      const a = (await api.getTaskStatus({ taskId: "c1-a" })).task;
      assert.deepEqual(a?.dependents, ["c1-b"]);

      const d = await daemon("chain-daemon", 4, "pool=chain");
      const r = runner(d);
      await r.waitAssigned("c1-a");
      // An unrelated task, which the workflow's watchers must not see.
      await api.submitTask({ taskId: "c1-other", type: "other", payload: { target_labels: "pool=none" } });
      await new Promise((res) => setTimeout(res, 150));
      assert.deepEqual(r.assigned, ["c1-a"], "nothing else before c1-a ends");
      await r.finish("c1-a");
      await r.waitAssigned("c1-b");
      assert.equal(statusOf((await api.getTaskStatus({ taskId: "c1-c" })).task?.status), "WAITING");
      await r.finish("c1-b");
      await r.waitAssigned("c1-c");
      await r.finish("c1-c");
      await waitForTask(api, "c1-c", TaskStatus.COMPLETED);
      assert.deepEqual(r.assigned, ["c1-a", "c1-b", "c1-c"]);

      const listed = await api.listTasks({ workflowId: "chain-1", order: 2 });
      assert.equal(listed.total, 3);
      assert.deepEqual(
        listed.tasks.map((t) => t.id),
        ["c1-a", "c1-b", "c1-c"],
      );
      // The workflow's status changes only, from the start of the log; the type filter does not
      // hide the submissions the watch learns the workflow's tasks from.
      const watched = await watchUntil(
        api,
        { workflowId: "chain-1", types: ["task.status"] },
        (events) => events.filter((e) => e.taskId === "c1-c" && e.data.to === "COMPLETED").length === 1,
      );
      assert.ok(
        watched.every(
          (e) => e.type === "task.status" && e.taskId.startsWith("c1-") && e.taskId !== "c1-other",
        ),
      );
      assert.deepEqual(
        watched.filter((e) => e.taskId === "c1-b").map((e) => e.data.to),
        ["PENDING", "ASSIGNED", "RUNNING", "COMPLETED"],
      );
      d.close();
    });

    it("skips everything downstream of a failure and cancels what waits on a canceled task", async () => {
      await api.submitTasks({
        workflowId: "fail-1",
        tasks: [
          { taskId: "f1-a", type: "f", payload: { target_labels: "pool=fail" } },
          { taskId: "f1-b", type: "f", dependsOn: ["f1-a"] },
          { taskId: "f1-c", type: "f", dependsOn: ["f1-b"] },
          { taskId: "f1-d", type: "f", dependsOn: ["f1-a", "f1-c"] },
        ],
      });
      const d = await daemon("fail-daemon", 1, "pool=fail");
      const r = runner(d);
      await r.waitAssigned("f1-a");
      await r.finish("f1-a", false);
      const b = await waitForTask(api, "f1-b", TaskStatus.SKIPPED);
      assert.equal(b.error, "dependency f1-a ended FAILED");
      const c = await waitForTask(api, "f1-c", TaskStatus.SKIPPED);
      assert.equal(c.error, "dependency f1-b ended SKIPPED");
      const dd = await waitForTask(api, "f1-d", TaskStatus.SKIPPED);
      assert.match(dd.error, /^dependency f1-(a ended FAILED|c ended SKIPPED)$/);
      const ev = (await storedEvents(api, "f1-b")).find((e) => e.type === "task.status");
      assert.deepEqual(
        {
          from: ev?.data.from,
          to: ev?.data.to,
          dependency: ev?.data.dependency,
          status: ev?.data.dependency_status,
        },
        { from: "WAITING", to: "SKIPPED", dependency: "f1-a", status: "FAILED" },
      );
      assert.deepEqual(r.assigned, ["f1-a"], "nothing downstream ran");
      d.close();

      // Cancelling a queued task cancels what waits on it; cancelling a waiting task ends it too.
      await api.submitTasks({
        tasks: [
          { taskId: "x1-a", type: "x", payload: { target_labels: "pool=none" } },
          { taskId: "x1-b", type: "x", dependsOn: ["x1-a"] },
          { taskId: "x1-c", type: "x", dependsOn: ["x1-b"] },
          { taskId: "x1-w", type: "x", dependsOn: ["x1-a"] },
        ],
      });
      await api.cancelTask({ taskId: "x1-w", reason: "not needed" });
      assert.equal(statusOf((await api.getTaskStatus({ taskId: "x1-w" })).task?.status), "CANCELED");
      await api.cancelTask({ taskId: "x1-a", reason: "rollout stopped" });
      const xb = await waitForTask(api, "x1-b", TaskStatus.CANCELED);
      assert.equal(xb.error, "dependency x1-a ended CANCELED");
      await waitForTask(api, "x1-c", TaskStatus.CANCELED);
    });

    it("counts a dependency that had already ended at once", async () => {
      const d = await daemon("done-daemon", 2, "pool=done");
      const r = runner(d);
      await api.submitTask({ taskId: "done-ok", type: "d", payload: { target_labels: "pool=done" } });
      await r.waitAssigned("done-ok");
      await r.finish("done-ok");
      await api.submitTask({ taskId: "done-bad", type: "d", payload: { target_labels: "pool=done" } });
      await r.waitAssigned("done-bad");
      await r.finish("done-bad", false);
      await waitForTask(api, "done-bad", TaskStatus.FAILED);
      await api.submitTask({
        taskId: "after-ok",
        type: "d",
        dependsOn: ["done-ok"],
        payload: { target_labels: "pool=nobody" },
      });
      // Answered once decided: queued at once, never seen WAITING by a reader.
      assert.equal(statusOf((await api.getTaskStatus({ taskId: "after-ok" })).task?.status), "PENDING");
      await api.submitTask({ taskId: "after-bad", type: "d", dependsOn: ["done-bad"] });
      const bad = (await api.getTaskStatus({ taskId: "after-bad" })).task;
      assert.equal(statusOf(bad?.status), "SKIPPED");
      assert.equal(bad?.error, "dependency done-bad ended FAILED");
      const ok = (await api.getTaskStatus({ taskId: "done-ok" })).task;
      assert.deepEqual(ok?.dependents, ["after-ok"]);
      d.close();
    });

    it("refuses hostile graphs naming the field and id, and stores nothing of the request", async () => {
      const before = (await api.listTasks({ limit: 1 })).total;
      const cases: [string, () => Promise<unknown>, RegExp][] = [
        [
          "self-dependency",
          () => api.submitTask({ taskId: "h-self", type: "h", dependsOn: ["h-self"] }),
          /^depends_on: h-self cannot depend on itself$/,
        ],
        [
          "unknown id",
          () => api.submitTask({ taskId: "h-unknown", type: "h", dependsOn: ["no-such-task"] }),
          /^depends_on: no-such-task is not a stored task/,
        ],
        [
          "cycle through the batch",
          () =>
            api.submitTasks({
              tasks: [
                { taskId: "h-c1", type: "h", dependsOn: ["h-c3"] },
                { taskId: "h-c2", type: "h", dependsOn: ["h-c1"] },
                { taskId: "h-c3", type: "h", dependsOn: ["h-c2"] },
              ],
            }),
          /^tasks\[\d\]\.depends_on: h-c\d is on a cycle: h-c\d -> h-c\d -> h-c\d -> h-c\d$/,
        ],
        [
          "10,000 dependencies",
          () =>
            api.submitTask({
              taskId: "h-wide",
              type: "h",
              dependsOn: Array.from({ length: 10_000 }, (_, i) => `dep-${i}`),
            }),
          /^depends_on: at most 100 dependencies \(got 10000\)$/,
        ],
        [
          "a dependency named twice",
          () =>
            api.submitTasks({
              tasks: [
                { taskId: "h-d1", type: "h" },
                { taskId: "h-d2", type: "h", dependsOn: ["h-d1", "h-d1"] },
              ],
            }),
          /^tasks\[1\]\.depends_on: h-d1 is named twice$/,
        ],
        [
          "one invalid task of three",
          () =>
            api.submitTasks({
              tasks: [
                { taskId: "h-v1", type: "h" },
                { taskId: "h-v2", type: "", dependsOn: ["h-v1"] },
                { taskId: "h-v3", type: "h", dependsOn: ["h-v2"] },
              ],
            }),
          /^tasks\[1\]\.type: is required/,
        ],
        [
          "an id twice in one request",
          () =>
            api.submitTasks({
              tasks: [
                { taskId: "h-twice", type: "h" },
                { taskId: "h-twice", type: "h" },
              ],
            }),
          /^tasks\[1\]\.task_id: h-twice is also tasks\[0\]$/,
        ],
        [
          "too many tasks",
          () =>
            api.submitTasks({
              tasks: Array.from({ length: 1001 }, (_, i) => ({ taskId: `h-many-${i}`, type: "h" })),
            }),
          /^tasks: at most 1000 tasks in one call \(got 1001\)$/,
        ],
      ];
      for (const [what, call, expected] of cases) {
        const err = await refused(call(), Code.InvalidArgument);
        const found = violations(err);
        assert.ok(
          found.some((v) => expected.test(v)),
          `${what}: ${JSON.stringify(found)} should match ${expected}`,
        );
      }
      assert.equal((await api.listTasks({ limit: 1 })).total, before, "nothing was stored");
      assert.equal((await api.listTasks({ idPrefix: "h-" })).total, 0);
    });

    it("bounds the depth of a chain over stored tasks", async () => {
      const chain = Array.from({ length: 1000 }, (_, i) => ({
        taskId: `deep-${i}`,
        type: "deep",
        payload: { target_labels: "pool=none" },
        dependsOn: i === 0 ? [] : [`deep-${i - 1}`],
      }));
      await api.submitTasks({ workflowId: "deep", tasks: chain });
      assert.equal(statusOf((await api.getTaskStatus({ taskId: "deep-999" })).task?.status), "WAITING");
      await api.submitTask({ taskId: "deep-1000", type: "deep", dependsOn: ["deep-999"] });
      const err = await refused(
        api.submitTask({ taskId: "deep-1001", type: "deep", dependsOn: ["deep-1000"] }),
        Code.InvalidArgument,
      );
      assert.deepEqual(violations(err), [
        "depends_on: a chain of dependencies at most 1000 deep (this one is 1001)",
      ]);
      // Cancelling the head ends the whole chain.
      await api.cancelTask({ taskId: "deep-0" });
      await waitForTask(api, "deep-1000", TaskStatus.CANCELED, 30_000);
    });

    it("makes SubmitTasks idempotent, and all or nothing when an id is taken", async () => {
      const req = {
        workflowId: "idem-1",
        tasks: [
          { taskId: "i1-a", type: "i", payload: { k: "v", target_labels: "pool=none" } },
          { taskId: "i1-b", type: "i", dependsOn: ["i1-a"] },
        ],
      };
      const first = await api.submitTasks(req);
      const again = await api.submitTasks(req);
      assert.deepEqual(
        { ids: again.taskIds, wf: again.workflowId, created: again.created },
        {
          ids: first.taskIds,
          wf: "idem-1",
          created: false,
        },
      );
      await refused(
        api.submitTasks({
          ...req,
          tasks: [
            { taskId: "i1-a", type: "i", payload: { k: "other", target_labels: "pool=none" } },
            { taskId: "i1-b", type: "i", dependsOn: ["i1-a"] },
          ],
        }),
        Code.AlreadyExists,
      );
      const e = await refused(
        api.submitTasks({
          tasks: [
            { taskId: "i2-new", type: "i" },
            { taskId: "i1-a", type: "i", payload: { k: "v", target_labels: "pool=none" } },
          ],
        }),
        Code.AlreadyExists,
      );
      assert.match(e.rawMessage, /nothing was stored/);
      await refused(api.getTaskStatus({ taskId: "i2-new" }), Code.NotFound);
    });

    it("cancels by filter and by ids: dry run, a bound per call, per-task results and audit records", async () => {
      await api.submitTasks({
        tasks: Array.from({ length: 30 }, (_, i) => ({
          taskId: `cf-${String(i).padStart(2, "0")}`,
          type: "cancel-me",
          metadata: { rollout: "r7" },
          payload: { target_labels: "pool=none" },
        })),
      });
      const dry = await api.cancelTasks({ filter: { label: "rollout=r7" }, dryRun: true, limit: 1000 });
      assert.deepEqual([dry.matched, dry.canceled, dry.remaining, dry.dryRun], [30, 30, 0, true]);
      assert.equal(
        (await api.listTasks({ label: "rollout=r7", status: "PENDING" })).total,
        30,
        "dry run changed nothing",
      );
      const some = await api.cancelTasks({
        filter: { label: "rollout=r7", type: "cancel-me" },
        limit: 10,
        reason: "r7 stopped",
      });
      assert.deepEqual([some.matched, some.canceled, some.remaining], [10, 10, 20]);
      assert.deepEqual(
        some.results.map((r) => r.taskId),
        Array.from({ length: 10 }, (_, i) => `cf-${String(i).padStart(2, "0")}`),
        "oldest first",
      );
      assert.ok(some.results.every((r) => r.success && r.status === TaskStatus.CANCELED));
      const rest = await api.cancelTasks({ filter: { label: "rollout=r7" } });
      assert.deepEqual([rest.matched, rest.canceled, rest.remaining], [20, 20, 0]);
      const none = await api.cancelTasks({ filter: { label: "rollout=r7" } });
      assert.equal(none.matched, 0, "ended tasks no longer match");

      const byIds = await api.cancelTasks({ taskIds: ["cf-00", "no-such", "cf-xx"] });
      assert.deepEqual(
        byIds.results.map((r) => [r.taskId, r.success, r.error.split(":")[0]]),
        [
          ["cf-00", false, "failed_precondition"],
          ["no-such", false, "not_found"],
          ["cf-xx", false, "not_found"],
        ],
      );
      const unconfirmed = await refused(api.cancelTasks({ filter: {} }), Code.InvalidArgument);
      assert.match(violations(unconfirmed)[0] ?? "", /^filter: matches every task that has not ended/);
      await refused(api.cancelTasks({}), Code.InvalidArgument);
      const all = await api.cancelTasks({ all: true, dryRun: true, limit: 1000 });
      assert.ok(all.matched > 0 && all.results.every((r) => r.success));
      await refused(api.cancelTasks({ filter: { label: "no-equals-sign" } }), Code.InvalidArgument);
      await refused(api.cancelTasks({ taskIds: ["a"], filter: { type: "x" } }), Code.InvalidArgument);

      const records = [];
      for (let after = 0n; ; ) {
        const page = await api.listAuditEvents({ limit: 1000, afterSequence: after });
        records.push(...page.events.filter((r) => r.method === "spage.api.SpageAPI/CancelTasks"));
        if (page.events.length < 1000) break;
        after = page.nextAfterSequence;
      }
      const batch = records.filter((r) => r.detail.includes("filter type=cancel-me label=rollout=r7"));
      assert.equal(batch.length, 1, JSON.stringify(records.map((r) => r.detail)));
      assert.match(batch[0]?.detail ?? "", /matched 10, canceled 10, remaining 20/);
      const perTask = records.filter((r) => r.detail === "canceled in a batch").map((r) => r.taskId);
      assert.equal(perTask.length, 30);
      assert.ok(perTask.includes("cf-00") && perTask.includes("cf-29"));
    });

    it("cancels 1,000 tasks by a filter over curl with JSON and over grpc-js", async () => {
      await api.submitTasks({
        workflowId: "big-1",
        tasks: Array.from({ length: 1000 }, (_, i) => ({
          taskId: `big-${i}`,
          type: "big",
          metadata: { batch: "b1" },
          payload: { target_labels: "pool=none" },
        })),
      });
      const curl = async (body: unknown) => {
        const { stdout } = await run("curl", [
          "-sS",
          "-X",
          "POST",
          `${server.url}/spage.api.SpageAPI/CancelTasks`,
          "-H",
          "content-type: application/json",
          "-H",
          `authorization: Bearer ${server.adminKey}`,
          "-d",
          JSON.stringify(body),
        ]);
        return JSON.parse(stdout) as {
          matched?: number;
          canceled?: number;
          remaining?: number;
          dryRun?: boolean;
        };
      };
      const counted = await curl({
        filter: { workflowId: "big-1", label: "batch=b1" },
        dryRun: true,
        limit: 1000,
      });
      assert.deepEqual([counted.matched, counted.canceled, counted.dryRun], [1000, 1000, true]);
      const grpc = grpcJsClient(server.url, undefined, server.adminKey);
      try {
        const half = (await grpc.unary(SpageAPI, "CancelTasks", {
          filter: { label: "batch=b1" },
          limit: 500,
          reason: "stop the rollout",
        })) as { matched: number; canceled: number; remaining: number };
        assert.deepEqual([half.matched, half.canceled, half.remaining], [500, 500, 500]);
      } finally {
        grpc.close();
      }
      const rest = await curl({ filter: { label: "batch=b1" }, limit: 1000 });
      assert.deepEqual([rest.matched, rest.canceled, rest.remaining ?? 0], [500, 500, 0]);
      const canceled = await api.listTasks({ workflowId: "big-1", status: "CANCELED", limit: 1 });
      assert.equal(canceled.total, 1000);
    });

    it("retries a finished task with the same input, linked to it", async () => {
      const d = await daemon("retry-daemon", 1, "pool=retry");
      const r = runner(d);
      await api.submitTask({
        taskId: "rt-1",
        type: "playbook",
        payload: { playbook: "site.yml", target_labels: "pool=retry" },
        metadata: { team: "web" },
        timeoutSeconds: 60,
        workflowId: "retry-wf",
      });
      await refused(api.retryTask({ taskId: "rt-1" }), Code.FailedPrecondition);
      await r.waitAssigned("rt-1");
      await r.finish("rt-1", false);
      await waitForTask(api, "rt-1", TaskStatus.FAILED);
      const noHosts = await refused(
        api.retryTask({ taskId: "rt-1", failedHostsOnly: true }),
        Code.FailedPrecondition,
      );
      assert.match(noHosts.rawMessage, /no host failed/);
      const { task } = await api.retryTask({ taskId: "rt-1", newTaskId: "rt-1-again" });
      assert.equal(task?.id, "rt-1-again");
      assert.deepEqual(
        {
          retryOf: task?.retryOf,
          payload: task?.payload,
          metadata: task?.metadata,
          timeout: task?.timeoutSeconds,
          wf: task?.workflowId,
        },
        {
          retryOf: "rt-1",
          payload: { playbook: "site.yml", target_labels: "pool=retry" },
          metadata: { team: "web" },
          timeout: 60,
          wf: "retry-wf",
        },
      );
      const again = await api.retryTask({ taskId: "rt-1", newTaskId: "rt-1-again" });
      assert.equal(again.task?.id, "rt-1-again", "idempotent on the new id");
      await r.waitAssigned("rt-1-again");
      await r.finish("rt-1-again");
      await waitForTask(api, "rt-1-again", TaskStatus.COMPLETED);
      const retried = (await storedEvents(api, "rt-1")).filter((e) => e.type === "task.retried");
      assert.deepEqual(
        retried.map((e) => e.data.retry_id),
        ["rt-1-again"],
      );
      await refused(api.retryTask({ taskId: "no-such-task" }), Code.NotFound);
      d.close();
    });

    it("lets a reader key do none of the batch calls", async () => {
      const { apiKey } = await createApiKey(store, "reader", ["tasks:read"], "test");
      const readerSessions = new Http2SessionManager(server.url);
      const reader = createClient(
        SpageAPI,
        createGrpcTransport({
          baseUrl: server.url,
          sessionManager: readerSessions,
          interceptors: [
            (next) => (req) => {
              req.header.set("authorization", `Bearer ${apiKey}`);
              return next(req);
            },
          ],
        }),
      );
      await api.submitTask({ taskId: "ro-1", type: "ro", payload: { target_labels: "pool=none" } });
      await refused(reader.submitTasks({ tasks: [{ taskId: "ro-2", type: "ro" }] }), Code.PermissionDenied);
      await refused(reader.cancelTasks({ taskIds: ["ro-1"] }), Code.PermissionDenied);
      await refused(reader.cancelTasks({ filter: { type: "ro" }, dryRun: true }), Code.PermissionDenied);
      await refused(reader.retryTask({ taskId: "ro-1" }), Code.PermissionDenied);
      assert.equal(statusOf((await api.getTaskStatus({ taskId: "ro-1" })).task?.status), "PENDING");
      await refused(api.getTaskStatus({ taskId: "ro-2" }), Code.NotFound);
      readerSessions.abort();
    });

    it("decides by the sweep a waiting task whose dependency ended without anyone resolving it", async () => {
      // Written to the store directly, as a gateway that crashed between the end and its
      // resolution would have left them: nothing was published, so only the sweep can find it.
      const made = await store.createTasks(
        [
          {
            id: "sw-a",
            type: "s",
            priority: 2,
            payload: {},
            metadata: {},
            requestHash: "",
            status: TaskStatus.PENDING,
            timeoutSeconds: 0,
            origin: "core",
          },
          {
            id: "sw-b",
            type: "s",
            priority: 2,
            payload: {},
            metadata: {},
            requestHash: "",
            status: TaskStatus.WAITING,
            timeoutSeconds: 0,
            dependsOn: ["sw-a"],
            depth: 1,
          },
        ],
        [
          { type: "task.submitted", taskId: "sw-a", data: {} },
          { type: "task.submitted", taskId: "sw-b", data: {} },
        ],
      );
      assert.ok(made.created);
      const a = made.records[0];
      assert.ok(a);
      const ended = await store.updateTask(
        "sw-a",
        { status: TaskStatus.PENDING, version: a.version },
        { status: TaskStatus.SKIPPED, completedAt: new Date() },
        [],
      );
      assert.ok(ended);
      const b = await waitForTask(api, "sw-b", TaskStatus.SKIPPED);
      assert.equal(b.error, "dependency sw-a ended SKIPPED");
    });
  });
}

workflowSuite("workflows on SQLite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "spage-workflows-"));
  return {
    store: openSqliteStore({ path: join(dir, "spage.db") }),
    drop: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

workflowSuite("workflows on PostgreSQL", async () => {
  const schema = freshSchemaName();
  return { store: await openPostgresStore({ url: testDatabaseUrl, schema }), drop: () => dropSchema(schema) };
});
