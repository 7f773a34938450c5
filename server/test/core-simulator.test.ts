/**
 * The gateway against a simulated Spage core that behaves on the wire exactly as the contract
 * describes a real one (grpc-js, h2c, no metadata; RegisterTask twice; lazy StreamProgress with
 * start/done/skipped updates per Ansible task and host; replies ignored; cancel on exit).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { type Event, type HostSummary, type Task, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { type CoreRun, CoreSimulator, type PlanTask, planUpdates } from "./helpers/core-simulator.js";
import { describeEvents, type GatewayClients, gatewayClients, watchUntil } from "./helpers/event-watch.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

/** 3 Ansible tasks x 2 hosts: web2 fails "Install nginx" and so skips "Start nginx". */
const nginxError = "No package matching 'nginx' found available, installed or updated";
const plan: readonly PlanTask[] = [
  { name: "Gathering Facts", hosts: { web1: "ok", web2: "ok" } },
  { name: "Install nginx", hosts: { web1: "ok", web2: { failed: nginxError } } },
  { name: "Start nginx", hosts: { web1: "ok", web2: "skipped" } },
];

function runOf(taskId: string): CoreRun {
  return {
    taskId,
    playbook: "playbooks/site.yml",
    inventory: "inventories/prod/hosts.ini",
    variables: { env: "prod", nginx_port: "8080", release: "1.4.2" },
    engine: "local",
  };
}

/** The host summaries as plain objects, for deepEqual. */
function hostsOf(task: Task | undefined): Omit<HostSummary, "$typeName">[] {
  return (task?.hosts ?? []).map(
    ({ host, ok, failed, skipped, running, lastError, failedTask, currentTask }) => ({
      host,
      ok,
      failed,
      skipped,
      running,
      lastError,
      failedTask,
      currentTask,
    }),
  );
}

function summary(
  host: string,
  counts: { ok?: number; failed?: number; skipped?: number; running?: number; currentTask?: string },
  failure: { lastError: string; failedTask: string } = { lastError: "", failedTask: "" },
): Omit<HostSummary, "$typeName"> {
  return {
    host,
    ok: counts.ok ?? 0,
    failed: counts.failed ?? 0,
    skipped: counts.skipped ?? 0,
    running: counts.running ?? 0,
    currentTask: counts.currentTask ?? "",
    ...failure,
  };
}

/** Whether `events` contain a task.status event moving to `to`. */
const reached = (to: string) => (events: readonly Event[]) =>
  events.some((e) => e.type === "task.status" && e.data.to === to);

describe("a simulated Spage core against the gateway", () => {
  let server: TestServer;
  let clients: GatewayClients;
  let target: string;
  const cores: CoreSimulator[] = [];

  const newCore = (taskId: string) => {
    const core = new CoreSimulator({ target, run: runOf(taskId), streamTimeoutMs: 30_000 });
    cores.push(core);
    return core;
  };

  /** Waits until the gateway has no StreamProgress call open (the core's cancel is fully handled). */
  const progressStreamsClosed = async (timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await clients.api.getMetrics({}, { timeoutMs: 2000 });
      if ((m.gauges.progress_streams_open ?? 0) === 0) return;
      if (Date.now() > deadline) assert.fail("the gateway still holds a progress stream the core cancelled");
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  before(async () => {
    // The grace a core gets to reconnect after its stream ended is long here: these tests look at
    // what is stored while the run is still open (core-only-runs.test.ts covers how it ends).
    server = await startTestServer(["--core-grace-ms", "60000"]);
    target = `127.0.0.1:${server.port}`;
    clients = gatewayClients(server.url);
  });

  after(async () => {
    for (const core of cores) await core.exit();
    clients.close();
    await server.close();
  });

  it("keeps everything the first RegisterTask set when the second, thinner one arrives", async () => {
    const run = runOf("core-register-twice");
    const core = newCore(run.taskId);
    const [full, thin] = await core.register();
    assert.equal(full?.success, true);
    assert.equal(full?.taskId, run.taskId);
    assert.equal(thin?.success, true);
    assert.equal(thin?.taskId, run.taskId);

    const answers = [
      ["SpageExecution", await clients.exec.getTaskStatus({ taskId: run.taskId })],
      ["SpageAPI", await clients.api.getTaskStatus({ taskId: run.taskId })],
    ] as const;
    for (const [service, res] of answers) {
      const task = res.task;
      assert.ok(task, `${service}.GetTaskStatus returns the task`);
      assert.equal(task.id, run.taskId);
      assert.equal(task.type, "playbook");
      assert.equal(task.status, TaskStatus.PENDING, `${service}: registered, nothing run yet`);
      const { variables, ...payload } = task.payload;
      assert.deepEqual(
        payload,
        { playbook: run.playbook, inventory: run.inventory, engine: run.engine },
        `${service}: payload after the thin registration`,
      );
      assert.deepEqual(JSON.parse(variables ?? "null"), run.variables, `${service}: variables kept`);
      assert.deepEqual(
        task.metadata,
        { playbook: run.playbook, inventory: run.inventory, engine: run.engine },
        `${service}: metadata kept`,
      );
    }
    const events = await watchUntil(clients.api, { taskId: run.taskId }, (e) => e.length >= 2);
    assert.deepEqual(
      events.map((e) => e.type),
      ["task.registered", "task.registered"],
    );
  });

  it("summarises the run per host while it runs and after the core has sent everything", async () => {
    const run = runOf("core-host-summary");
    const core = newCore(run.taskId);
    await core.register();
    const updates = planUpdates(plan);
    assert.equal(updates.length, 11, "4 + 4 + 3 updates: web2 sends a skip and no start for the last task");

    // The first Ansible task done on both hosts, the second started on both.
    for (const u of updates.slice(0, 6)) core.send(u);
    await core.waitForReplies(6);
    const mid = (await clients.api.getTaskStatus({ taskId: run.taskId })).task;
    assert.equal(mid?.status, TaskStatus.RUNNING, "the first update makes the task RUNNING");
    assert.ok(mid?.startedAt, "started_at is set once RUNNING");
    assert.deepEqual(hostsOf(mid), [
      summary("web1", { ok: 1, running: 1, currentTask: "Install nginx" }),
      summary("web2", { ok: 1, running: 1, currentTask: "Install nginx" }),
    ]);
    assert.equal(mid?.progress, 50, "2 steps done out of 4 seen");

    for (const u of updates.slice(6)) core.send(u);
    await core.waitForReplies(updates.length);
    const end = await core.exit();
    assert.equal(end?.code, grpc.status.CANCELLED, "the core cancels its stream on exit");

    for (const res of [
      await clients.api.getTaskStatus({ taskId: run.taskId }),
      await clients.exec.getTaskStatus({ taskId: run.taskId }),
    ]) {
      const task = res.task;
      assert.equal(task?.status, TaskStatus.RUNNING, "the core's grace to reconnect has not passed");
      assert.deepEqual(hostsOf(task), [
        summary("web1", { ok: 3 }),
        summary(
          "web2",
          { ok: 1, failed: 1, skipped: 1 },
          { lastError: nginxError, failedTask: "Install nginx" },
        ),
      ]);
      assert.ok(
        (task?.progress ?? -1) > 0 && (task?.progress ?? 100) < 100,
        `overall progress ${task?.progress} is between 0 and 100 while the run is not over`,
      );
      assert.equal(task?.error, "");
      assert.equal(task?.completedAt, undefined);
    }
  });

  it("stores every answered update of a core that cancels its stream, and does not fail the run for it", async () => {
    const run = runOf("core-cancel-answered");
    const core = newCore(run.taskId);
    await core.register();
    core.runPlan(plan);
    // A real run takes time between its last update and its exit; the replies stand in for it.
    await core.waitForReplies(core.sent.length);
    const end = await core.exit();
    assert.equal(end?.code, grpc.status.CANCELLED);
    await progressStreamsClosed();

    const expectedTypes = [
      "task.registered",
      "task.registered",
      "task.status",
      ...core.sent.map(() => "task.progress"),
    ];
    const events = await watchUntil(
      clients.api,
      { taskId: run.taskId, afterSequence: 0n },
      (e) => e.length >= expectedTypes.length,
    );
    // A fence: a third, thin registration. Whatever the gateway wrote for this task before it (a
    // failure caused by the cancel, a duplicate) shows up between the expected events and the fence.
    await clients.exec.registerTask({ taskId: run.taskId, playbook: run.playbook });
    const withFence = await watchUntil(
      clients.api,
      { taskId: run.taskId, afterSequence: events[events.length - 1]?.sequence ?? 0n },
      (e) => e.length >= 1,
    );
    const all = [...events, ...withFence];
    assert.deepEqual(
      all.map((e) => e.type),
      [...expectedTypes, "task.registered"],
      `events of the run:\n${describeEvents(all)}`,
    );
    const status = events[2];
    assert.deepEqual({ from: status?.data.from, to: status?.data.to }, { from: "PENDING", to: "RUNNING" });
    const progress = events.slice(3);
    assert.deepEqual(
      progress.map((e) => [e.data.message, e.data.host, e.data.task, e.data.progress]),
      core.sent.map((u) => [u.message, u.metadata.host, u.metadata.task, String(u.progress)]),
      "one task.progress per update, in the order sent",
    );
    for (let i = 1; i < all.length; i++) {
      assert.ok((all[i]?.sequence ?? 0n) > (all[i - 1]?.sequence ?? 0n), "sequences increase");
    }

    const task = (await clients.api.getTaskStatus({ taskId: run.taskId })).task;
    assert.equal(task?.status, TaskStatus.RUNNING, "a cancelled stream does not fail the run");
    assert.equal(task?.error, "");
  });

  it("stores every update that reached the gateway before the core cancelled, answered or not", async () => {
    const run = runOf("core-cancel-unanswered");
    const core = newCore(run.taskId);
    await core.register();
    core.runPlan(plan);
    core.runPlan(plan);
    // Cancels as soon as every update is on the wire, without waiting for an answer.
    const end = await core.exit();
    assert.equal(end?.code, grpc.status.CANCELLED);

    const expected = 3 + core.sent.length;
    const events = await watchUntil(
      clients.api,
      { taskId: run.taskId, afterSequence: 0n },
      (e) => e.length >= expected,
      5000,
    );
    assert.deepEqual(
      events.slice(3).map((e) => e.data.message),
      core.sent.map((u) => u.message),
    );
    const task = (await clients.api.getTaskStatus({ taskId: run.taskId })).task;
    assert.equal(task?.status, TaskStatus.RUNNING);
  });

  it("ends the run COMPLETED when a core-like runner sends run_status completed", async () => {
    const run = runOf("core-run-completed");
    const core = newCore(run.taskId);
    await core.register();
    core.runPlan([
      { name: "Gathering Facts", hosts: { web1: "ok", web2: "ok" } },
      { name: "Reload nginx", hosts: { web1: "ok", web2: "skipped" } },
    ]);
    core.finishRun("completed", 0);
    await watchUntil(clients.api, { taskId: run.taskId, types: ["task.status"] }, reached("COMPLETED"));
    await core.exit();

    const task = (await clients.api.getTaskStatus({ taskId: run.taskId })).task;
    assert.equal(task?.status, TaskStatus.COMPLETED);
    assert.equal(task?.progress, 100);
    assert.deepEqual(task?.result, {
      hosts: "2",
      steps_ok: "3",
      steps_failed: "0",
      steps_skipped: "1",
      "recap.web1": "ok=2 failed=0 skipped=0",
      "recap.web2": "ok=1 failed=0 skipped=1",
      exit_code: "0",
    });
    assert.equal(task?.error, "");
    assert.ok(task?.completedAt, "completed_at is set");
    assert.deepEqual(hostsOf(task), [summary("web1", { ok: 2 }), summary("web2", { ok: 1, skipped: 1 })]);
  });

  it("ends the run FAILED, naming the failing host, when a runner sends run_status failed", async () => {
    const run = runOf("core-run-failed");
    const core = newCore(run.taskId);
    await core.register();
    core.runPlan(plan);
    core.finishRun("failed", 2);
    const events = await watchUntil(
      clients.api,
      { taskId: run.taskId, types: ["task.status"] },
      reached("FAILED"),
    );
    await core.exit();

    assert.deepEqual(
      events.map((e) => `${e.data.from}->${e.data.to}`),
      ["PENDING->RUNNING", "RUNNING->FAILED"],
    );
    const task = (await clients.api.getTaskStatus({ taskId: run.taskId })).task;
    assert.equal(task?.status, TaskStatus.FAILED);
    assert.match(task?.error ?? "", /web2/, "the error names the host that failed");
    assert.ok(task?.error.includes(nginxError), `the error carries the host's error: ${task?.error}`);
    assert.doesNotMatch(task?.error ?? "", /web1/, "web1 did not fail");
    assert.deepEqual(task?.result, {
      hosts: "2",
      steps_ok: "4",
      steps_failed: "1",
      steps_skipped: "1",
      "recap.web1": "ok=3 failed=0 skipped=0",
      "recap.web2": "ok=1 failed=1 skipped=1",
      exit_code: "2",
    });
    assert.ok(task?.completedAt);
  });

  it("completes a RUNNING task from ReportTaskResult; the same report again succeeds, another fails", async () => {
    const run = runOf("core-report-result");
    const core = newCore(run.taskId);
    await core.register();
    core.runPlan(plan.slice(0, 1));
    await core.waitForReplies(core.sent.length);
    await core.exit();
    assert.equal((await clients.api.getTaskStatus({ taskId: run.taskId })).task?.status, TaskStatus.RUNNING);

    const report = {
      taskId: run.taskId,
      status: TaskStatus.COMPLETED,
      exitCode: 0,
      duration: 12.5,
      output: "PLAY RECAP *** web1 : ok=3 web2 : ok=3",
      result: { changed: "2", ok: "6" },
    };
    const first = await clients.api.reportTaskResult(report);
    assert.equal(first.success, true);
    assert.equal(first.task?.status, TaskStatus.COMPLETED);
    assert.ok(first.sequence > 0n, "the report's event sequence");
    assert.deepEqual(first.task?.result, {
      changed: "2",
      ok: "6",
      exit_code: "0",
      output: report.output,
    });
    assert.ok(first.task?.completedAt);

    const again = await clients.api.reportTaskResult(report);
    assert.equal(again.success, true, "repeating the same outcome succeeds");
    assert.equal(again.task?.status, TaskStatus.COMPLETED);
    assert.deepEqual(again.task?.completedAt, first.task?.completedAt, "and changes nothing");

    await assert.rejects(
      clients.api.reportTaskResult({ ...report, status: TaskStatus.FAILED, exitCode: 1, error: "boom" }),
      (err: unknown) => {
        const ce = ConnectError.from(err);
        assert.equal(ce.code, Code.FailedPrecondition, ce.message);
        assert.match(ce.rawMessage, /COMPLETED/);
        return true;
      },
    );
    const task = (await clients.api.getTaskStatus({ taskId: run.taskId })).task;
    assert.equal(task?.status, TaskStatus.COMPLETED, "the different outcome changed nothing");
    assert.equal(task?.error, "");
    const statusEvents = await watchUntil(
      clients.api,
      { taskId: run.taskId, types: ["task.status"] },
      (e) => e.length >= 2,
    );
    assert.deepEqual(
      statusEvents.map((e) => `${e.data.from}->${e.data.to}`),
      ["PENDING->RUNNING", "RUNNING->COMPLETED"],
    );
  });
});
