/**
 * Cancellation and timeouts of tasks that run on daemons: CancelTask makes an assigned or running
 * task CANCELING with a deadline and forwards task.cancel to its daemon; the daemon's confirmation
 * ends it CANCELED; no confirmation in time ends it by its lost-task policy (FAILED, or CANCELED
 * under "requeue": canceled work is never rerun). A task past its timeout ends TIMED_OUT and its
 * daemon is told to stop it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { TaskStatus } from "../../gen/spage/core/common_pb.js";
import { describeEvents } from "./helpers/event-watch.js";
import {
  fastTimings,
  type GatewayEnv,
  storedEvents,
  submit,
  type TestDaemon,
  transitions,
  waitForTask,
  withGateway,
} from "./helpers/test-daemon.js";

/** Waits for `taskId` on `d` and reports it started (RUNNING). */
async function start(env: GatewayEnv, d: TestDaemon, taskId: string): Promise<void> {
  await d.waitFor("task.assigned", (e) => e.data.task_id === taskId);
  await d.ack("task.started", { task_id: taskId });
  await waitForTask(env.api, taskId, TaskStatus.RUNNING);
}

describe("canceling tasks on daemons", () => {
  it("forwards the cancel of a running task and ends it CANCELED on confirmation", async () =>
    withGateway(fastTimings, async (env) => {
      const { api, daemons } = env;
      const d = await daemons.connect({ daemonId: "worker", heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "cancel-me" });
      await start(env, d, taskId);

      const before = Date.now();
      const res = await api.cancelTask({ taskId, reason: "operator said so" });
      assert.equal(res.success, true);
      const canceling = (await api.getTaskStatus({ taskId })).task;
      assert.equal(canceling?.status, TaskStatus.CANCELING);
      assert.equal(canceling?.daemonId, "worker", "the task stays with its daemon while CANCELING");
      assert.ok(canceling?.cancelDeadline, "cancel_deadline is set while CANCELING");
      const due = timestampMs(canceling.cancelDeadline);
      assert.ok(
        due >= before + 600 && due <= Date.now() + 600,
        `cancel_deadline ${due - before} ms out, expected 600`,
      );

      const cancel = await d.waitFor("task.cancel", (e) => e.data.task_id === taskId);
      assert.equal(cancel.data.reason, "operator said so");
      assert.equal(Date.parse(cancel.data.deadline ?? ""), due, "the daemon is told the same deadline");
      assert.equal(cancel.taskId, taskId);

      await d.ack("task.canceled", { task_id: taskId });
      const task = await waitForTask(api, taskId, TaskStatus.CANCELED);
      assert.equal(task.cancelDeadline, undefined, "cancel_deadline is cleared once the task ended");
      assert.equal(task.daemonId, "");
      assert.deepEqual(
        task.attempts.map((x) => [x.daemonId, x.outcome]),
        [["worker", "canceled"]],
      );
      assert.deepEqual(await transitions(env, taskId), [
        "PENDING->ASSIGNED",
        "ASSIGNED->RUNNING",
        "RUNNING->CANCELING",
        "CANCELING->CANCELED",
      ]);
      // Confirming again is harmless.
      await d.ack("task.canceled", { task_id: taskId });
    }));

  it("forwards the cancel of an assigned (not started) task", async () =>
    withGateway(fastTimings, async (env) => {
      const { api, daemons } = env;
      const d = await daemons.connect({ daemonId: "slowstarter", heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "never-started" });
      await d.waitFor("task.assigned", (e) => e.data.task_id === taskId);
      await api.cancelTask({ taskId });
      await waitForTask(api, taskId, TaskStatus.CANCELING);
      const cancel = await d.waitFor("task.cancel", (e) => e.data.task_id === taskId);
      assert.ok(cancel.data.deadline);
      await d.ack("task.canceled", { task_id: taskId });
      await waitForTask(api, taskId, TaskStatus.CANCELED);
      assert.deepEqual(await transitions(env, taskId), [
        "PENDING->ASSIGNED",
        "ASSIGNED->CANCELING",
        "CANCELING->CANCELED",
      ]);
    }));

  it("ends an unconfirmed cancel by the lost-task policy: FAILED, or CANCELED under requeue", async () =>
    withGateway(fastTimings, async (env) => {
      const { api, daemons } = env;
      const d = await daemons.connect({ daemonId: "deaf", capacity: 2, heartbeatMs: 100 });
      const failing = await submit(api, { taskId: "unconfirmed-fail" });
      const requeue = await submit(api, { taskId: "unconfirmed-requeue", onLost: "requeue", maxAttempts: 3 });
      await start(env, d, failing);
      await start(env, d, requeue);

      const canceledAt = Date.now();
      await api.cancelTask({ taskId: failing });
      await api.cancelTask({ taskId: requeue });
      await d.waitFor("task.cancel", (e) => e.data.task_id === failing);
      await d.waitFor("task.cancel", (e) => e.data.task_id === requeue);
      // The daemon keeps heartbeating but never confirms.

      const failed = await waitForTask(api, failing, TaskStatus.FAILED, 5000);
      assert.ok(
        failed.completedAt && timestampMs(failed.completedAt) - canceledAt >= 600,
        "not before the grace",
      );
      assert.match(failed.error, /daemon deaf did not confirm the cancel/);
      assert.deepEqual(await transitions(env, failing), [
        "PENDING->ASSIGNED",
        "ASSIGNED->RUNNING",
        "RUNNING->CANCELING",
        "CANCELING->LOST",
        "LOST->FAILED",
      ]);

      const canceled = await waitForTask(api, requeue, TaskStatus.CANCELED, 5000);
      assert.equal(canceled.attempt, 1, "canceled work is never rerun");
      assert.deepEqual(
        canceled.attempts.map((x) => x.outcome),
        ["lost"],
      );
      const events = (await storedEvents(api, requeue)).filter((e) => e.type === "task.status");
      assert.deepEqual(
        events.map((e) => `${e.data.from}->${e.data.to}`),
        ["PENDING->ASSIGNED", "ASSIGNED->RUNNING", "RUNNING->CANCELING", "CANCELING->LOST", "LOST->CANCELED"],
        describeEvents(events),
      );
      assert.equal(events[4]?.data.reason, "canceled work is not rerun");
      assert.deepEqual(d.eventsOf("task.assigned", requeue).length, 1);

      // Both slots are free again: new work reaches the daemon.
      const next = await submit(api, { taskId: "after-the-cancels" });
      await d.waitFor("task.assigned", (e) => e.data.task_id === next);
      // A late confirmation of an ended task is acknowledged and changes nothing.
      await d.ack("task.canceled", { task_id: failing });
      assert.equal((await api.getTaskStatus({ taskId: failing })).task?.status, TaskStatus.FAILED);
    }));

  it("resends a cancel that came while the daemon was away once it re-attaches the task", async () =>
    withGateway([...fastTimings, "--lost-grace-ms", "3000", "--cancel-grace-ms", "3000"], async (env) => {
      const { api, daemons } = env;
      const d = await daemons.connect({ daemonId: "roamer", heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "cancel-while-away" });
      await start(env, d, taskId);
      d.abort();
      await d.ended;
      await api.cancelTask({ taskId });
      await waitForTask(api, taskId, TaskStatus.CANCELING);

      const back = await daemons.connect({ daemonId: "roamer", running: [taskId], heartbeatMs: 100 });
      assert.equal(back.welcome?.data.reattached, taskId);
      const cancel = await back.waitFor("task.cancel", (e) => e.data.task_id === taskId);
      assert.ok(cancel.data.reason);
      await back.ack("task.canceled", { task_id: taskId });
      await waitForTask(api, taskId, TaskStatus.CANCELED);
    }));
});

describe("task timeouts on daemons", () => {
  it("ends a running task TIMED_OUT after its timeout and tells the daemon to stop it", async () =>
    withGateway(fastTimings, async (env) => {
      const { api, daemons } = env;
      const d = await daemons.connect({ daemonId: "plodder", capacity: 1, heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "too-slow", timeoutSeconds: 1 });
      const assigned = await d.waitFor("task.assigned", (e) => e.data.task_id === taskId);
      assert.equal(assigned.data.timeout_seconds, "1");
      const assignedAt = Date.now();
      await d.ack("task.started", { task_id: taskId });
      const waiting = await submit(api, { taskId: "queued-behind" });

      const cancel = await d.waitFor("task.cancel", (e) => e.data.task_id === taskId, 5000);
      const elapsed = Date.now() - assignedAt;
      assert.equal(cancel.data.reason, "timed out after 1s");
      assert.ok(
        elapsed >= 900 && elapsed < 4000,
        `task.cancel ${elapsed} ms after the assignment, expected ~1000`,
      );
      const task = await waitForTask(api, taskId, TaskStatus.TIMED_OUT);
      assert.equal(task.error, "timed out after 1s");
      assert.equal(task.daemonId, "");
      assert.deepEqual(
        task.attempts.map((x) => [x.daemonId, x.outcome]),
        [["plodder", "timed_out"]],
      );
      assert.deepEqual(await transitions(env, taskId), [
        "PENDING->ASSIGNED",
        "ASSIGNED->RUNNING",
        "RUNNING->TIMED_OUT",
      ]);

      // The daemon confirms the stop; its slot is free, so the queued task comes next.
      await d.ack("task.canceled", { task_id: taskId });
      await d.waitFor("task.assigned", (e) => e.data.task_id === waiting);
      assert.equal((await api.getTaskStatus({ taskId })).task?.status, TaskStatus.TIMED_OUT);
    }));

  it("ends an assigned task that is never started TIMED_OUT too", async () =>
    withGateway(fastTimings, async (env) => {
      const { api, daemons } = env;
      const d = await daemons.connect({ daemonId: "dawdler", heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "assigned-too-long", timeoutSeconds: 1 });
      await d.waitFor("task.assigned", (e) => e.data.task_id === taskId);
      await d.ack("task.accepted", { task_id: taskId });
      // The timeout counts from when the task left PENDING (proto: SubmitTaskRequest.timeout_seconds).
      const task = await waitForTask(api, taskId, TaskStatus.TIMED_OUT, 4000);
      assert.equal(task.error, "timed out after 1s");
      await d.waitFor("task.cancel", (e) => e.data.task_id === taskId);
    }));

  it("keeps sweeping other tasks while an assigned task is past its timeout", async () =>
    withGateway(fastTimings, async (env) => {
      const { api, daemons } = env;
      const a = await daemons.connect({ daemonId: "holder", heartbeatMs: 100 });
      const overdue = await submit(api, { taskId: "overdue-assigned", timeoutSeconds: 1 });
      await a.waitFor("task.assigned", (e) => e.data.task_id === overdue);
      const assigned = (await api.getTaskStatus({ taskId: overdue })).task;
      assert.ok(assigned?.deadlineAt, "an assigned task with a timeout has a deadline");
      const deadline = timestampMs(assigned.deadlineAt);
      // Once the overdue task is past its deadline (ended or not), another daemon vanishes mid-run.
      await waitForTask(
        api,
        overdue,
        (t) => t.status !== TaskStatus.ASSIGNED || Date.now() > deadline + 100,
        4000,
      );
      const b = await daemons.connect({ daemonId: "goner", labels: "role=goner", heartbeatMs: 100 });
      const lost = await submit(api, { taskId: "lost-meanwhile", payload: { target_labels: "role=goner" } });
      await start(env, b, lost);
      b.abort();
      const task = await waitForTask(api, lost, TaskStatus.FAILED, 4000);
      assert.match(task.error, /daemon goner/);
    }));
});
