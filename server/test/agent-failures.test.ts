/**
 * The reference agent when things go wrong, every part a real process:
 *
 * - an agent killed with SIGKILL mid-task: its assigned (not started) task goes back to the queue at
 *   once and to another agent; its running task goes LOST after the grace window and then follows
 *   the lost-task policy (FAILED by default, back to the queue and rerun with "requeue");
 * - `spage-gateway cancel` of a running task ends the real process (SIGTERM to its process group),
 *   and a process that ignores SIGTERM is SIGKILLed after the agent's --kill-grace-ms.
 *
 * Task processes run in their own process group and outlive a killed agent; their pids (from the
 * RUNNING event's `pid` or the agent's log) are killed in cleanup.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import type { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { TaskStatus } from "../../gen/spage/core/common_pb.js";
import {
  Cleanup,
  fastTimings,
  runCli,
  startGateway,
  statusPath,
  storedEvents,
  tempDir,
  waitForStatus,
  waitForTask,
} from "./helpers/agent-harness.js";
import { type AgentProcess, pidExists, startAgentProcess } from "./helpers/agent-process.js";
import { describeEvents, watchUntil } from "./helpers/event-watch.js";
import { startTcpProxy } from "./helpers/tcp-proxy.js";

/** The pid the agent reported when the task went RUNNING (the process group leader). */
async function runningPid(api: Client<typeof SpageAPI>, taskId: string): Promise<number> {
  const events = await storedEvents(api, taskId);
  const running = events.filter((e) => e.type === "task.status" && e.data.to === "RUNNING");
  const pid = Number(running.at(-1)?.data.pid);
  assert.ok(Number.isInteger(pid) && pid > 1, `RUNNING event with a pid:\n${describeEvents(events)}`);
  return pid;
}

/**
 * Waits (bounded) until neither the process nor anything in its process group exists any more (a
 * killed grandchild may linger briefly as a zombie until init reaps it).
 */
async function waitGone(pid: number, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((pidExists(pid) || pidExists(-pid)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.throws(() => process.kill(pid, 0), { code: "ESRCH" }, `process ${pid} still exists`);
  assert.throws(() => process.kill(-pid, 0), { code: "ESRCH" }, `process group ${pid} is not empty`);
}

function attemptsOf(task: { attempts: readonly { outcome: string; daemonId: string }[] }) {
  return task.attempts.map((a) => `${a.daemonId}:${a.outcome}`);
}

describe("agent failures", () => {
  it("an agent killed mid-task: assigned work is requeued at once, running work goes LOST then FAILED", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-agent-fail-");
      const g = await startGateway(cleanup, dir);
      // The first agent talks through a proxy, so its reports can be held up for a moment.
      const proxy = await startTcpProxy(g.port);
      cleanup.add(() => proxy.close());
      const a = startAgentProcess({
        endpoint: proxy.url,
        daemonId: "agent-doomed",
        capacity: 2,
        command: "sleep 30",
      });
      cleanup.add(() => a.cleanup());

      await g.api.submitTask({ taskId: "k-running", type: "job" });
      await waitForStatus(g.api, "k-running", TaskStatus.RUNNING);
      a.trackPid(await runningPid(g.api, "k-running"));

      // Hold the agent's reports: it receives and starts the second task, but the gateway never
      // hears task.started, so the task stays ASSIGNED there.
      proxy.hold();
      await g.api.submitTask({ taskId: "k-assigned", type: "job" });
      await waitForStatus(g.api, "k-assigned", TaskStatus.ASSIGNED);
      const started = await a.waitForLog((l) => l.msg === "task started" && l.task === "k-assigned");
      assert.equal((await g.api.getTaskStatus({ taskId: "k-assigned" })).task?.status, TaskStatus.ASSIGNED);

      await a.kill("SIGKILL");
      const killedAt = Date.now();
      // The task processes are in their own process groups: they outlive the agent (cleanup kills them).
      assert.ok(pidExists(Number(started.pid)), "the orphaned task process still runs");

      // Its stream closed: the assigned task goes back to the queue at once ...
      const requeued = await waitForTask(
        g.api,
        "k-assigned",
        (t) => t.status !== TaskStatus.ASSIGNED,
        3000,
        "left ASSIGNED",
      );
      assert.equal(TaskStatus[requeued.status], "PENDING");
      assert.ok(Date.now() - killedAt < fastTimings["lost-grace-ms"], "requeued before any grace window");
      // ... while the running one waits out the grace window (its daemon may come back).
      assert.equal((await g.api.getTaskStatus({ taskId: "k-running" })).task?.status, TaskStatus.RUNNING);

      // Another agent picks up the requeued task; the lost one is not rerun (policy "fail").
      const b = startAgentProcess({
        endpoint: g.url,
        daemonId: "agent-rescue",
        capacity: 2,
        command: "echo rescued {task_id}",
      });
      cleanup.add(() => b.cleanup());
      const done = await waitForStatus(g.api, "k-assigned", TaskStatus.COMPLETED);
      assert.equal(done.attempt, 2);
      assert.deepEqual(attemptsOf(done), ["agent-doomed:requeued", "agent-rescue:completed"]);
      assert.equal(done.attempts[0]?.startedAt, undefined, "the first attempt never started");

      const failed = await waitForStatus(g.api, "k-running", TaskStatus.FAILED, 8000);
      assert.equal(failed.attempt, 1);
      assert.deepEqual(attemptsOf(failed), ["agent-doomed:lost"]);
      assert.match(failed.error, /vanished mid-run/);

      const events = await storedEvents(g.api);
      const mine = (id: string) => events.filter((e) => e.taskId === id);
      assert.deepEqual(
        statusPath(mine("k-assigned")),
        ["ASSIGNED", "PENDING", "ASSIGNED", "RUNNING", "COMPLETED"],
        describeEvents(mine("k-assigned")),
      );
      assert.deepEqual(
        statusPath(mine("k-running")),
        ["ASSIGNED", "RUNNING", "LOST", "FAILED"],
        describeEvents(mine("k-running")),
      );
      // LOST only after the grace window, counted from the daemon leaving.
      const left = events.find((e) => e.type === "daemon.left" && e.data.daemon_id === "agent-doomed");
      const lost = mine("k-running").find((e) => e.type === "task.status" && e.data.to === "LOST");
      assert.ok(left?.timestamp && lost?.timestamp, describeEvents(events));
      const waited = timestampMs(lost.timestamp) - timestampMs(left.timestamp);
      assert.ok(waited >= fastTimings["lost-grace-ms"] - 100, `LOST ${waited} ms after the daemon left`);
      assert.equal(
        b.count((l) => l.msg === "task started" && l.task === "k-running"),
        0,
      );
    } finally {
      await cleanup.run();
    }
  });

  it('an agent killed mid-task under on_lost "requeue": the task runs again on another agent', async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-agent-fail-");
      const g = await startGateway(cleanup, dir);
      const a = startAgentProcess({
        endpoint: g.url,
        daemonId: "agent-doomed",
        capacity: 1,
        command: "sleep 30",
      });
      cleanup.add(() => a.cleanup());
      await g.api.submitTask({ taskId: "r-1", type: "job", onLost: "requeue", maxAttempts: 3 });
      await waitForStatus(g.api, "r-1", TaskStatus.RUNNING);
      const firstPid = await runningPid(g.api, "r-1");
      a.trackPid(firstPid);

      await a.kill("SIGKILL");
      // The rescuer is there before the grace window ends; it gets the task once it is requeued.
      const b = startAgentProcess({
        endpoint: g.url,
        daemonId: "agent-rescue",
        capacity: 1,
        command: "echo second run of {task_id}",
      });
      cleanup.add(() => b.cleanup());
      const done = await waitForStatus(g.api, "r-1", TaskStatus.COMPLETED, 10_000);
      assert.equal(done.attempt, 2);
      assert.deepEqual(attemptsOf(done), ["agent-doomed:lost", "agent-rescue:completed"]);
      const events = await storedEvents(g.api, "r-1");
      assert.deepEqual(
        statusPath(events),
        ["ASSIGNED", "RUNNING", "LOST", "PENDING", "ASSIGNED", "RUNNING", "COMPLETED"],
        describeEvents(events),
      );
      const lines = events.filter((e) => e.type === "task.output").map((e) => e.data.line);
      assert.deepEqual(lines, ["second run of r-1"]);
      // Nothing stops the first attempt's process when its agent dies: it still runs (cleanup kills it).
      assert.ok(pidExists(firstPid), "the first attempt's orphaned process outlived the rerun");
    } finally {
      await cleanup.run();
    }
  });

  it("cancel through the CLI ends the real process; one that ignores SIGTERM is killed after the grace", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-agent-cancel-");
      const g = await startGateway(cleanup, dir);
      const killGraceMs = 300;
      // c-stubborn ignores SIGTERM (and says so once the trap is set); the others just sleep.
      const command =
        "if [ {task_id} = c-stubborn ]; then trap '' TERM; echo armed; fi; sleep 30; echo not stopped";
      const agent: AgentProcess = startAgentProcess({
        endpoint: g.url,
        daemonId: "agent-cancel",
        capacity: 2,
        command,
        killGraceMs,
      });
      cleanup.add(() => agent.cleanup());
      await g.api.submitTask({ taskId: "c-plain", type: "job" });
      await g.api.submitTask({ taskId: "c-stubborn", type: "job" });
      await waitForStatus(g.api, "c-plain", TaskStatus.RUNNING);
      await waitForStatus(g.api, "c-stubborn", TaskStatus.RUNNING);
      const plainPid = await runningPid(g.api, "c-plain");
      const stubbornPid = await runningPid(g.api, "c-stubborn");
      agent.trackPid(plainPid);
      agent.trackPid(stubbornPid);
      assert.ok(pidExists(plainPid) && pidExists(stubbornPid));

      const cancel = await runCli(cleanup, ["cancel", "c-plain", "--endpoint", g.url, "--reason", "enough"]);
      assert.equal(cancel.code, 0, cancel.stderr);
      assert.match(cancel.stdout, /^c-plain: (CANCELED|CANCELING \(waiting for its daemon\))$/m);
      const plain = await waitForStatus(g.api, "c-plain", TaskStatus.CANCELED, 5000);
      await waitGone(plainPid);
      assert.deepEqual(attemptsOf(plain), ["agent-cancel:canceled"]);
      const plainEnd = await agent.waitForLog((l) => l.msg === "task ended" && l.task === "c-plain");
      assert.equal(plainEnd.stopped, true);
      assert.equal(plainEnd.exitCode, 143, "ended by SIGTERM");

      // The stubborn one: wait until its trap is set (its first output line), then cancel.
      await watchUntil(g.api, { taskId: "c-stubborn", types: ["task.output"] }, (evs) =>
        evs.some((e) => e.data.line?.includes("armed")),
      );
      const cancel2 = await runCli(cleanup, ["cancel", "c-stubborn", "--endpoint", g.url]);
      assert.equal(cancel2.code, 0, cancel2.stderr);
      const stubborn = await waitForStatus(g.api, "c-stubborn", TaskStatus.CANCELED, 5000);
      await waitGone(stubbornPid);
      assert.deepEqual(attemptsOf(stubborn), ["agent-cancel:canceled"]);
      const stubbornEnd = await agent.waitForLog((l) => l.msg === "task ended" && l.task === "c-stubborn");
      assert.equal(stubbornEnd.stopped, true);
      assert.equal(stubbornEnd.exitCode, 137, "ended by SIGKILL");

      const events = await storedEvents(g.api, "c-stubborn");
      assert.deepEqual(
        statusPath(events),
        ["ASSIGNED", "RUNNING", "CANCELING", "CANCELED"],
        describeEvents(events),
      );
      const at = (to: string) => {
        const ev = events.find((e) => e.type === "task.status" && e.data.to === to);
        assert.ok(ev?.timestamp, `${to} event`);
        return timestampMs(ev.timestamp);
      };
      const took = at("CANCELED") - at("CANCELING");
      assert.ok(took >= killGraceMs, `SIGKILL came ${took} ms after the cancel, before the kill grace`);
      assert.ok(took < fastTimings["cancel-grace-ms"], `confirmed within the cancel grace (${took} ms)`);
      const lines = events.filter((e) => e.type === "task.output").map((e) => e.data.line);
      assert.deepEqual(lines, ["armed"], "the command never got past its sleep");
    } finally {
      await cleanup.run();
    }
  });
});
