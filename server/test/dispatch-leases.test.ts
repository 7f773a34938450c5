/**
 * What happens to a daemon's tasks when it vanishes: an assigned task goes back to the queue at
 * once; a running one waits out the grace window, then goes LOST and on by its lost-task policy
 * (FAILED, or PENDING again while attempts remain). A daemon that stops heartbeating loses its
 * stream; one that comes back within the grace window re-attaches its tasks, and resent output is
 * stored once.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { TaskStatus } from "../../gen/spage/core/common_pb.js";
import { describeEvents, watchUntil } from "./helpers/event-watch.js";
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

/** Waits until ListDaemons no longer shows `daemonId` as connected (its goodbye is recorded). */
async function waitGone(env: GatewayEnv, daemonId: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { daemons } = await env.api.listDaemons({});
    if (!daemons.some((d) => d.id === daemonId)) return;
    if (Date.now() > deadline)
      throw new Error(`daemon ${daemonId} still listed as connected after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Connects a daemon that takes `taskId` and reports it started; resolves once it is RUNNING. */
async function runOn(env: GatewayEnv, d: TestDaemon, taskId: string, attempt = "1"): Promise<void> {
  const assigned = await d.waitFor(
    "task.assigned",
    (e) => e.data.task_id === taskId && e.data.attempt === attempt,
  );
  assert.equal(assigned.data.attempt, attempt);
  await d.ack("task.accepted", { task_id: taskId });
  await d.ack("task.started", { task_id: taskId, pid: "100" });
  await waitForTask(env.api, taskId, TaskStatus.RUNNING);
}

describe("daemons that vanish", () => {
  it("requeues an assigned task at once when its daemon's stream is aborted", async () =>
    // The sweep is slowed to a minute: only the stream's own goodbye can requeue the task here.
    withGateway([...fastTimings, "--sweep-interval-ms", "60000"], async (env) => {
      const { api, daemons } = env;
      const a = await daemons.connect({ daemonId: "a", heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "assigned-then-gone" });
      await a.waitFor("task.assigned", (e) => e.data.task_id === taskId && e.data.attempt === "1");
      const b = await daemons.connect({ daemonId: "b", heartbeatMs: 100 });

      a.abort();
      const again = await b.waitFor("task.assigned", (e) => e.data.task_id === taskId, 3000);
      assert.equal(again.data.attempt, "2");
      const task = await waitForTask(api, taskId, TaskStatus.ASSIGNED);
      assert.equal(task.daemonId, "b");
      assert.equal(task.attempt, 2);
      assert.deepEqual(
        task.attempts.map((x) => [x.number, x.daemonId, x.outcome, Boolean(x.startedAt), Boolean(x.endedAt)]),
        [
          [1, "a", "requeued", false, true],
          [2, "b", "running", false, false],
        ],
      );
      const events = await storedEvents(api, taskId);
      const status = events.filter((e) => e.type === "task.status");
      assert.deepEqual(
        status.map((e) => [e.data.from, e.data.to, e.data.daemon_id]),
        [
          ["PENDING", "ASSIGNED", "a"],
          ["ASSIGNED", "PENDING", "a"],
          ["PENDING", "ASSIGNED", "b"],
        ],
        describeEvents(events),
      );
      assert.equal(status[1]?.data.reason, "daemon a left before starting it");

      await b.ack("task.started", { task_id: taskId });
      await b.ack("task.completed", { task_id: taskId });
      const done = await waitForTask(api, taskId, TaskStatus.COMPLETED);
      assert.deepEqual(
        done.attempts.map((x) => x.outcome),
        ["requeued", "completed"],
      );
    }));

  it("fails a running task (policy fail) once the grace window passes: RUNNING, LOST, FAILED", async () =>
    withGateway(fastTimings, async (env) => {
      const { api, daemons } = env;
      const a = await daemons.connect({ daemonId: "vanisher", heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "running-then-gone" });
      await runOn(env, a, taskId);

      const abortedAt = Date.now();
      a.abort();
      const task = await waitForTask(api, taskId, TaskStatus.FAILED, 5000);
      assert.ok(task.completedAt);
      assert.ok(
        timestampMs(task.completedAt) - abortedAt >= 600,
        `failed ${timestampMs(task.completedAt) - abortedAt} ms after the abort, before the 600 ms grace`,
      );
      assert.match(task.error, /daemon vanisher/);
      assert.equal(task.onLost, "fail");
      assert.equal(task.daemonId, "");
      assert.deepEqual(
        task.attempts.map((x) => [x.number, x.daemonId, x.outcome]),
        [[1, "vanisher", "lost"]],
      );
      assert.match(task.attempts[0]?.error ?? "", /daemon vanisher/);

      const events = (await storedEvents(api, taskId)).filter((e) => e.type === "task.status");
      assert.deepEqual(
        events.map((e) => `${e.data.from}->${e.data.to}`),
        ["PENDING->ASSIGNED", "ASSIGNED->RUNNING", "RUNNING->LOST", "LOST->FAILED"],
        describeEvents(events),
      );
      assert.match(events[2]?.data.error ?? "", /daemon vanisher vanished mid-run/);
      assert.equal(events[3]?.data.reason, "policy fail");
    }));

  it("requeues a lost task (policy requeue) until its attempts are used up", async () =>
    withGateway(fastTimings, async (env) => {
      const { api, daemons } = env;
      const a = await daemons.connect({ daemonId: "first", heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "requeue-me", onLost: "requeue", maxAttempts: 2 });
      await runOn(env, a, taskId, "1");
      const b = await daemons.connect({ daemonId: "second", heartbeatMs: 100 });

      a.abort();
      // LOST, back to PENDING, and to the other daemon as attempt 2.
      await runOn(env, b, taskId, "2");
      const mid = (await api.getTaskStatus({ taskId })).task;
      assert.equal(mid?.attempt, 2);
      assert.equal(mid?.daemonId, "second");
      assert.equal(mid?.error, "", "a requeued task carries no error");

      b.abort();
      const task = await waitForTask(api, taskId, TaskStatus.FAILED, 5000);
      assert.equal(task.maxAttempts, 2);
      assert.equal(task.onLost, "requeue");
      assert.equal(task.attempt, 2);
      assert.match(task.error, /daemon second/);
      assert.deepEqual(
        task.attempts.map((x) => [x.number, x.daemonId, x.outcome]),
        [
          [1, "first", "lost"],
          [2, "second", "lost"],
        ],
      );
      const events = (await storedEvents(api, taskId)).filter((e) => e.type === "task.status");
      assert.deepEqual(
        events.map((e) => `${e.data.from}->${e.data.to}`),
        [
          "PENDING->ASSIGNED",
          "ASSIGNED->RUNNING",
          "RUNNING->LOST",
          "LOST->PENDING",
          "PENDING->ASSIGNED",
          "ASSIGNED->RUNNING",
          "RUNNING->LOST",
          "LOST->FAILED",
        ],
        describeEvents(events),
      );
      assert.equal(events[3]?.data.reason, "policy requeue: attempt 2 of 2");
      assert.equal(events[7]?.data.reason, "policy requeue: all 2 attempts used");
    }));

  it("ends the stream of a daemon that stops heartbeating with UNAVAILABLE after its lease", async () =>
    withGateway([...fastTimings, "--lease-ms", "600"], async (env) => {
      const { daemons } = env;
      const alive = await daemons.connect({ daemonId: "alive", heartbeatMs: 100 });
      const connectedAt = Date.now();
      const silent = await daemons.connect({ daemonId: "silent" });
      assert.equal(silent.welcome?.data.lease_ms, "600");
      assert.equal(silent.welcome?.data.heartbeat_ms, "100");

      const end = await Promise.race([
        silent.ended,
        new Promise<never>((_, reject) =>
          setTimeout(
            () => reject(new Error(`stream still open after 5 s:\n${silent.describe()}`)),
            5000,
          ).unref(),
        ),
      ]);
      const after = Date.now() - connectedAt;
      assert.equal(end.error?.code, Code.Unavailable, `ended with ${end.error?.message ?? "OK"}`);
      assert.match(end.error?.message ?? "", /no heartbeat from daemon silent/);
      assert.ok(after >= 600, `ended ${after} ms after connecting, before the 600 ms lease`);
      await waitGone(env, "silent");
      assert.equal(alive.isEnded, false, "a heartbeating daemon keeps its stream");
      await alive.ack("daemon.heartbeat");
    }));
});

describe("daemons that come back", () => {
  it("re-attaches a running task when its daemon reconnects within the grace window", async () =>
    withGateway([...fastTimings, "--lost-grace-ms", "3000"], async (env) => {
      const { api, daemons } = env;
      const a = await daemons.connect({ daemonId: "phoenix", heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "survivor" });
      await runOn(env, a, taskId);

      a.abort();
      await waitGone(env, "phoenix");
      const again = await daemons.connect({ daemonId: "phoenix", running: [taskId], heartbeatMs: 100 });
      assert.equal(again.welcome?.data.reattached, taskId);
      assert.equal(again.welcome?.data.cancel, "");
      const listed = (await api.listDaemons({})).daemons.find((d) => d.id === "phoenix");
      assert.deepEqual(listed?.taskIds, [taskId]);

      await again.ack("task.completed", { task_id: taskId, exit_code: "0" });
      const task = await waitForTask(api, taskId, TaskStatus.COMPLETED);
      assert.deepEqual(
        task.attempts.map((x) => [x.number, x.daemonId, x.outcome]),
        [[1, "phoenix", "completed"]],
      );
      assert.deepEqual(await transitions(env, taskId), [
        "PENDING->ASSIGNED",
        "ASSIGNED->RUNNING",
        "RUNNING->COMPLETED",
      ]);
    }));

  it("tells a daemon to stop tasks it claims that are not its own", async () =>
    withGateway(fastTimings, async (env) => {
      const { api, daemons } = env;
      const owner = await daemons.connect({ daemonId: "owner", heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "not-yours" });
      await runOn(env, owner, taskId);

      const impostor = await daemons.connect({
        daemonId: "impostor",
        running: [taskId, "no-such-task"],
        heartbeatMs: 100,
      });
      assert.equal(impostor.welcome?.data.reattached, "");
      assert.deepEqual(impostor.welcome?.data.cancel?.split(",").sort(), ["no-such-task", taskId].sort());
      for (const id of [taskId, "no-such-task"]) {
        const cancel = await impostor.waitFor("task.cancel", (e) => e.data.task_id === id);
        assert.equal(cancel.data.reason, "not running here");
      }
      const task = (await api.getTaskStatus({ taskId })).task;
      assert.equal(task?.status, TaskStatus.RUNNING, "the owner's task is untouched");
      assert.equal(task?.daemonId, "owner");
      assert.deepEqual(owner.eventsOf("task.cancel"), []);
    }));

  it("settles tasks a daemon no longer lists when it opens a new stream", async () =>
    withGateway(fastTimings, async (env) => {
      const { api, daemons } = env;
      const old = await daemons.connect({ daemonId: "forgetful", capacity: 2, heartbeatMs: 100 });
      const running = await submit(api, { taskId: "was-running" });
      await runOn(env, old, running);
      const assigned = await submit(api, { taskId: "was-assigned" });
      await old.waitFor("task.assigned", (e) => e.data.task_id === assigned);

      // A new stream while the old one is still open: the old one is ended, and the new hello
      // lists nothing, so the assigned task is requeued and the running one is LOST, then FAILED.
      const fresh = await daemons.connect({
        daemonId: "forgetful",
        capacity: 2,
        running: [],
        heartbeatMs: 100,
      });
      const oldEnd = await old.ended;
      assert.equal(oldEnd.error?.code, Code.Unavailable, oldEnd.error?.message);
      assert.match(oldEnd.error?.message ?? "", /connected again on another stream/);

      const failed = await waitForTask(api, running, TaskStatus.FAILED);
      assert.match(failed.error, /reconnected without it/);
      assert.deepEqual(await transitions(env, running), [
        "PENDING->ASSIGNED",
        "ASSIGNED->RUNNING",
        "RUNNING->LOST",
        "LOST->FAILED",
      ]);
      // The requeued task is handed out again, to the new stream.
      const again = await fresh.waitFor("task.assigned", (e) => e.data.task_id === assigned);
      assert.equal(again.data.attempt, "2");
      const t = await waitForTask(api, assigned, TaskStatus.ASSIGNED);
      assert.deepEqual(
        t.attempts.map((x) => x.outcome),
        ["requeued", "running"],
      );
    }));

  it("stores each output chunk once, also when resent after a reconnect", async () =>
    withGateway([...fastTimings, "--lost-grace-ms", "3000"], async (env) => {
      const { api, daemons } = env;
      const a = await daemons.connect({ daemonId: "chatty", heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "noisy" });
      await runOn(env, a, taskId);

      const out = (d: TestDaemon, seq: number, stream = "stdout") =>
        d.ack("task.output", { task_id: taskId, seq: String(seq), stream, line: `line ${seq}` });
      for (const seq of [1, 2]) {
        const ack = await out(a, seq);
        assert.deepEqual(
          { of: ack.data.of, task_id: ack.data.task_id, seq: ack.data.seq, duplicate: ack.data.duplicate },
          { of: "task.output", task_id: taskId, seq: String(seq), duplicate: undefined },
        );
      }

      a.abort();
      await waitGone(env, "chatty");
      const again = await daemons.connect({ daemonId: "chatty", running: [taskId], heartbeatMs: 100 });
      assert.equal(again.welcome?.data.reattached, taskId);
      const dup = await out(again, 2);
      assert.equal(dup.data.seq, "2");
      assert.equal(dup.data.duplicate, "true", "seq 2 was stored before the reconnect");
      const fresh = await out(again, 3, "stderr");
      assert.equal(fresh.data.seq, "3");
      assert.equal(fresh.data.duplicate, undefined);

      const outputs = await watchUntil(api, { taskId, types: ["task.output"], afterSequence: 0n }, (events) =>
        events.some((e) => e.data.seq === "3"),
      );
      assert.deepEqual(
        outputs.map((e) => e.data),
        [
          { daemon_id: "chatty", seq: "1", stream: "stdout", line: "line 1" },
          { daemon_id: "chatty", seq: "2", stream: "stdout", line: "line 2" },
          { daemon_id: "chatty", seq: "3", stream: "stderr", line: "line 3" },
        ],
      );
      // And nothing after them: the whole stored log of the task has exactly three.
      const all = (await storedEvents(api, taskId)).filter((e) => e.type === "task.output");
      assert.deepEqual(
        all.map((e) => e.data.seq),
        ["1", "2", "3"],
      );
    }));
});
