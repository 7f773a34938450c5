/**
 * Dispatch over the daemon channel (SpageAPI.StreamEvents), with scripted daemons: every task is
 * handed out exactly once, highest priority first and first in, first out within a priority, never
 * beyond a daemon's capacity, only to daemons carrying the labels it asks for; bad events on the
 * channel are answered with `error` events and never drop the stream; ListDaemons shows who is
 * connected and who left.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type Event, TaskPriority, TaskStatus } from "../../gen/spage/core/common_pb.js";
import type { GatewayStore } from "../src/store/gateway-store.js";
import { describeEvents } from "./helpers/event-watch.js";
import {
  fastTimings,
  slowStore,
  storedEvents,
  submit,
  type TestDaemon,
  waitForTask,
  withGateway,
} from "./helpers/test-daemon.js";

describe("dispatch to daemons", () => {
  it("hands each task out once, by priority then FIFO, within each daemon's capacity", async () =>
    withGateway(fastTimings, async ({ api, daemons }) => {
      // Queued while no daemon is connected, in this order.
      const queued: [string, TaskPriority][] = [
        ["low-1", TaskPriority.LOW],
        ["normal-1", TaskPriority.NORMAL],
        ["critical-1", TaskPriority.CRITICAL],
        ["normal-2", TaskPriority.NORMAL],
        ["high-1", TaskPriority.HIGH],
      ];
      for (const [taskId, priority] of queued) await submit(api, { taskId, priority });
      const expectedOrder = ["critical-1", "high-1", "normal-1", "normal-2", "low-1"];

      // Each daemon runs what it gets: accepted, started, then (once both hold a task) completed.
      const violations: string[] = [];
      const got = new Map<string, string[]>();
      let openGate!: () => void;
      const gate = new Promise<void>((resolve) => {
        openGate = resolve;
      });
      const run = (d: TestDaemon) => {
        const held = new Set<string>();
        got.set(d.id, []);
        d.onEvent((ev) => {
          if (ev.type !== "task.assigned") return;
          const taskId = ev.data.task_id ?? "";
          if (held.size >= 1) violations.push(`${d.id} got ${taskId} while holding ${[...held].join(",")}`);
          held.add(taskId);
          got.get(d.id)?.push(taskId);
          if ([...got.values()].every((ids) => ids.length > 0) && got.size === 2) openGate();
          void (async () => {
            await d.ack("task.accepted", { task_id: taskId });
            await d.ack("task.started", { task_id: taskId, pid: "4242" });
            await gate;
            held.delete(taskId);
            await d.ack("task.completed", { task_id: taskId, exit_code: "0", result_hosts_ok: "1" });
          })().catch((err: unknown) => violations.push(`${d.id}: ${err}`));
        }, true);
      };

      const d1 = await daemons.connect({ daemonId: "d1", capacity: 1, heartbeatMs: 100 });
      run(d1);
      // d1 is alone: it gets the most urgent task. Then d2 connects and gets the next one.
      await d1.waitFor("task.assigned", (e) => e.data.task_id === "critical-1");
      const d2 = await daemons.connect({ daemonId: "d2", capacity: 1, heartbeatMs: 100 });
      run(d2);

      const done = new Map<string, Awaited<ReturnType<typeof waitForTask>>>();
      for (const id of expectedOrder) done.set(id, await waitForTask(api, id, TaskStatus.COMPLETED, 8000));
      assert.deepEqual(
        violations,
        [],
        `capacity or protocol violations:\n${d1.describe()}\n---\n${d2.describe()}`,
      );

      const log = await storedEvents(api);
      const assigned = log.filter((e) => e.type === "task.assigned");
      assert.deepEqual(
        assigned.map((e) => e.taskId),
        expectedOrder,
        `stored task.assigned events, in log order:\n${describeEvents(assigned)}`,
      );
      const received = [...d1.eventsOf("task.assigned"), ...d2.eventsOf("task.assigned")].map(
        (e) => e.data.task_id,
      );
      assert.equal(received.length, 5, `task.assigned received by the daemons: ${received.join(", ")}`);
      assert.deepEqual([...received].sort(), [...expectedOrder].sort(), "no task handed to two daemons");
      assert.equal(got.get("d1")?.[0], "critical-1");
      assert.equal(got.get("d2")?.[0], "high-1");

      for (const [id, task] of done) {
        const owner = [...got].find(([, ids]) => ids.includes(id))?.[0];
        assert.equal(task.daemonId, "", `${id}: daemon_id is cleared once the task ended`);
        assert.equal(task.attempt, 1, id);
        assert.equal(task.attempts.length, 1, `${id}: exactly one attempt`);
        const a = task.attempts[0];
        assert.equal(a?.number, 1);
        assert.equal(a?.outcome, "completed", id);
        assert.equal(a?.daemonId, owner, `${id}: the attempt names the daemon that ran it`);
        assert.ok(a?.assignedAt && a.startedAt && a.endedAt, `${id}: assigned_at, started_at, ended_at set`);
        assert.ok(timestampMs(a.assignedAt) <= timestampMs(a.startedAt));
        assert.ok(timestampMs(a.startedAt) <= timestampMs(a.endedAt));
        assert.ok(task.startedAt && task.completedAt, `${id}: started_at and completed_at set`);
        assert.deepEqual(task.result, { hosts_ok: "1", exit_code: "0" });
        assert.equal(task.progress, 100);
        // The stored assignment names the same daemon and attempt.
        const stored = assigned.find((e) => e.taskId === id);
        assert.deepEqual(stored?.data, { daemon_id: owner, attempt: "1" });
      }
    }));

  it("a backlog of tasks no daemon can take does not starve a task one can", async () =>
    withGateway(fastTimings, async ({ api, daemons }) => {
      // More tasks for a zone nobody serves than one round first looks at, then one for anyone.
      for (let i = 0; i < 60; i++)
        await submit(api, { taskId: `nobody-${i}`, payload: { target_labels: "zone=nowhere" } });
      const plain = await submit(api, { taskId: "behind-the-backlog" });
      const d = await daemons.connect({ daemonId: "anyone", capacity: 1, heartbeatMs: 100 });
      const got = await d.waitFor("task.assigned", () => true, 2000);
      assert.equal(got.data.task_id, plain);
    }));

  it("gives a labelled task only to a daemon with its labels, and nothing to a draining daemon", async () =>
    withGateway(fastTimings, async ({ api, daemons }) => {
      const drained = await daemons.connect({ daemonId: "drained", capacity: 0, heartbeatMs: 100 });
      const zoneA = await daemons.connect({
        daemonId: "zone-a",
        capacity: 1,
        labels: "zone=a",
        heartbeatMs: 100,
      });
      const zoned = await submit(api, { taskId: "zoned", payload: { target_labels: "zone=b" } });
      const plain = await submit(api, { taskId: "plain" });

      // The plain task is younger: being handed out proves a round passed over the zoned one.
      const toA = await zoneA.waitFor("task.assigned");
      assert.equal(toA.data.task_id, plain, `zone-a got the wrong task:\n${zoneA.describe()}`);
      const waiting = (await api.getTaskStatus({ taskId: zoned })).task;
      assert.equal(waiting?.status, TaskStatus.PENDING, "no daemon with zone=b yet: the zoned task waits");
      assert.equal(waiting?.daemonId, "");

      const zoneB = await daemons.connect({
        daemonId: "zone-b",
        capacity: 2,
        labels: "zone=b,os=linux",
        heartbeatMs: 100,
      });
      const toB = await zoneB.waitFor("task.assigned");
      assert.equal(toB.data.task_id, zoned);
      assert.equal(JSON.parse(toB.data.payload ?? "{}").target_labels, "zone=b");
      const task = await waitForTask(api, zoned, TaskStatus.ASSIGNED);
      assert.equal(task.daemonId, "zone-b");

      // A last round with free slots on zone-b: still nothing for the draining daemon.
      const more = await submit(api, { taskId: "more" });
      await zoneB.waitFor("task.assigned", (e) => e.data.task_id === more);
      assert.deepEqual(
        drained.eventsOf("task.assigned"),
        [],
        `the draining daemon got work:\n${drained.describe()}`,
      );
      assert.deepEqual(
        zoneA.eventsOf("task.assigned").map((e) => e.data.task_id),
        [plain],
        "zone-a got only the plain task",
      );
    }));

  it("answers bad events with error events and keeps the stream open", async () =>
    withGateway(fastTimings, async ({ api, daemons }) => {
      const owner = await daemons.connect({ daemonId: "owner", capacity: 1, heartbeatMs: 100 });
      const taskId = await submit(api, { taskId: "owned" });
      await owner.waitFor("task.assigned", (e) => e.data.task_id === taskId);

      const d = await daemons.connect({ daemonId: "clumsy", hello: false });
      const expectError = async (type: string, data: Record<string, string>, code: string, text: RegExp) => {
        const answer = await d.call(type, data);
        assert.equal(
          answer.type,
          "error",
          `${type} ${JSON.stringify(data)} got ${JSON.stringify(answer.data)}`,
        );
        assert.equal(answer.data.code, code, `${type}: ${answer.data.message}`);
        assert.match(answer.data.message ?? "", text);
        assert.equal(answer.sequence, 0n, "channel replies are not stored");
        return answer;
      };

      // Before the hello.
      await expectError("daemon.heartbeat", {}, "failed_precondition", /send daemon\.hello first/);
      await expectError(
        "task.started",
        { task_id: taskId },
        "failed_precondition",
        /send daemon\.hello first/,
      );
      await expectError("daemon.hello", { daemon_id: "no spaces allowed" }, "invalid_argument", /daemon_id/);
      await expectError(
        "daemon.hello",
        { daemon_id: "clumsy", capacity: "1001" },
        "invalid_argument",
        /capacity/,
      );

      // A proper hello still works on the same stream.
      const welcome = await d.call("daemon.hello", { daemon_id: "clumsy", capacity: "0" });
      assert.equal(welcome.type, "daemon.welcome", JSON.stringify(welcome.data));
      assert.equal(welcome.data.daemon_id, "clumsy");

      await expectError(
        "daemon.frobnicate",
        {},
        "invalid_argument",
        /unknown event type "daemon\.frobnicate"/,
      );
      await expectError("task.output", { task_id: taskId }, "invalid_argument", /needs data key\(s\): seq/);
      await expectError("task.started", {}, "invalid_argument", /task_id/);
      await expectError("daemon.hello", { daemon_id: "clumsy" }, "failed_precondition", /already introduced/);
      // Reports about a task that is someone else's, or nobody's.
      await expectError(
        "task.started",
        { task_id: taskId },
        "failed_precondition",
        /on daemon owner, not running on clumsy/,
      );
      await expectError(
        "task.completed",
        { task_id: taskId },
        "failed_precondition",
        /not running on clumsy/,
      );
      await expectError(
        "task.output",
        { task_id: taskId, seq: "1", line: "x" },
        "failed_precondition",
        /clumsy/,
      );
      await expectError("task.canceled", { task_id: taskId }, "failed_precondition", /clumsy/);
      await expectError("task.rejected", { task_id: taskId }, "failed_precondition", /clumsy/);
      await expectError("task.completed", { task_id: "no-such-task" }, "not_found", /no-such-task/);

      // None of that touched the task, and the stream is still good.
      const task = (await api.getTaskStatus({ taskId })).task;
      assert.equal(task?.status, TaskStatus.ASSIGNED);
      assert.equal(task?.daemonId, "owner");
      const ok = await d.ack("daemon.heartbeat");
      assert.equal(ok.data.of, "daemon.heartbeat");
      assert.equal(d.isEnded, false);

      // The owner's own reports, also malformed ones, are answered the same way.
      const badSeq = await owner.call("task.output", { task_id: taskId, seq: "zero", line: "x" });
      assert.equal(badSeq.type, "error");
      assert.equal(badSeq.data.code, "invalid_argument");
      const badExit = await owner.call("task.completed", { task_id: taskId, exit_code: "1.5" });
      assert.equal(badExit.type, "error");
      assert.equal(badExit.data.code, "invalid_argument");
      await owner.ack("task.started", { task_id: taskId });
      await owner.ack("task.completed", { task_id: taskId });
      await waitForTask(api, taskId, TaskStatus.COMPLETED);
    }));

  it("lists connected daemons with their details, and those that left on request", async () =>
    withGateway(fastTimings, async ({ api, daemons }) => {
      const alpha = await daemons.connect({
        daemonId: "alpha",
        hostname: "alpha.example.net",
        version: "spaged/2.1",
        capacity: 3,
        labels: "os=linux,zone=a",
        heartbeatMs: 100,
      });
      const t1 = await submit(api, { taskId: "list-1" });
      const t2 = await submit(api, { taskId: "list-2" });
      await alpha.waitFor("task.assigned", (e) => e.data.task_id === t1);
      await alpha.waitFor("task.assigned", (e) => e.data.task_id === t2);

      const beta = await daemons.connect({ daemonId: "beta", hostname: "beta.example.net", capacity: 1 });
      beta.halfClose();
      const end = await beta.ended;
      assert.equal(end.error, undefined, `a half-closed stream ends normally, got ${end.error?.message}`);
      // The gateway records the departure once the stream is over.
      const deadline = Date.now() + 5000;
      let listed = (await api.listDaemons({})).daemons;
      while (listed.some((d) => d.id === "beta") && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        listed = (await api.listDaemons({})).daemons;
      }
      assert.deepEqual(
        listed.map((d) => d.id),
        ["alpha"],
        "only connected daemons by default",
      );
      const a = listed[0];
      assert.equal(a?.hostname, "alpha.example.net");
      assert.equal(a?.version, "spaged/2.1");
      assert.equal(a?.capacity, 3);
      assert.deepEqual(a?.labels, { os: "linux", zone: "a" });
      assert.deepEqual([...(a?.taskIds ?? [])].sort(), [t1, t2]);
      assert.equal(a?.connected, true);
      assert.ok(a?.connectedAt && a.lastSeen, "connected_at and last_seen are set");

      const all = (await api.listDaemons({ includeDisconnected: true })).daemons;
      assert.deepEqual(
        all.map((d) => [d.id, d.connected]),
        [
          ["alpha", true],
          ["beta", false],
        ],
        "connected daemons first, then those that left",
      );
      const b = all[1];
      assert.equal(b?.hostname, "beta.example.net");
      assert.deepEqual(b?.taskIds, []);

      const left = (await storedEvents(api)).filter((e: Event) => e.type === "daemon.left");
      assert.deepEqual(
        left.map((e) => e.data),
        [{ daemon_id: "beta", reason: "stream closed" }],
      );
    }));
});

describe("while a daemon's hello is being stored", () => {
  // Storing the hello is made slower than the lease (900 ms against 600 ms).
  const slowHello = { wrapStore: (store: GatewayStore) => slowStore(store, "daemonConnected", 900) };

  it("does not count the time against the daemon's lease", async () =>
    // The daemon learns heartbeat_ms from the welcome, so it cannot heartbeat before it.
    withGateway(
      [...fastTimings, "--lease-ms", "600"],
      async ({ daemons }) => {
        const d = await daemons.connect({ daemonId: "patient", heartbeatMs: 100, welcomeTimeoutMs: 5000 });
        assert.equal(d.welcome?.data.lease_ms, "600");
        await d.ack("daemon.heartbeat");
        assert.equal(d.isEnded, false);
      },
      slowHello,
    ));

  it("answers the hello before anything else and hands out no task until then", async () =>
    withGateway(
      fastTimings,
      async ({ api, daemons }) => {
        // Queued first: the dispatcher polls every 100 ms while the hello is being stored.
        const taskId = await submit(api, { taskId: "queued-before-hello" });
        const d = await daemons.connect({ daemonId: "newcomer", heartbeatMs: 100, welcomeTimeoutMs: 5000 });
        assert.equal(
          d.received[0]?.type,
          "daemon.welcome",
          `the first event is not the welcome:\n${d.describe()}`,
        );
        await d.waitFor("task.assigned", (e) => e.data.task_id === taskId);
        await d.ack("task.started", { task_id: taskId });
        await d.ack("task.completed", { task_id: taskId });
        const task = await waitForTask(api, taskId, TaskStatus.COMPLETED);
        assert.deepEqual(
          task.attempts.map((a) => [a.number, a.outcome]),
          [[1, "completed"]],
          describeEvents(await storedEvents(api, taskId)),
        );
        assert.deepEqual(
          d.eventsOf("task.assigned").map((e) => e.data.attempt),
          ["1"],
        );
      },
      slowHello,
    ));
});
