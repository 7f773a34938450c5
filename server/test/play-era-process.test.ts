/**
 * Plays a core of today runs on its own, with no daemon: the fake core in its play-era mode
 * (fixtures/fake-spage-core.ts `--era play`) as a real child process pointed straight at a gateway
 * (a real SQLite store, the default anonymous policy: the core sends no credentials). A play lives
 * as long as its core's streams are open; a core killed or stopped mid-step is noticed (its
 * connection drops, or keepalive pings go unanswered), the play goes LOST and then FAILED (policy
 * fail) after the lost grace; a core that ends its streams without ending its play fails it; one
 * that runs to the end completes it.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Task, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { statusPath } from "./helpers/agent-harness.js";
import { startCoreProcess } from "./helpers/core-process.js";
import { type GatewayClients, gatewayClients } from "./helpers/event-watch.js";
import { storedEvents, waitForTask } from "./helpers/test-daemon.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

/** Short timings: a 1.5 s lost grace, pings every 200 ms (as play-era.test.ts). */
const fastTimings = [
  "--lease-ms",
  "300",
  "--lost-grace-ms",
  "1500",
  "--core-grace-ms",
  "300",
  "--sweep-interval-ms",
  "50",
  "--ping-interval-ms",
  "200",
];

/** Steps as `n name STATUS`, for compact assertions. */
function steps(task: Task | undefined): string[] {
  return (task?.steps ?? []).map((s) => `${s.number} ${s.name} ${TaskStatus[s.status]}`);
}

describe("play era: a fake core of today as a real process, no daemon", { concurrency: 1 }, () => {
  let server: TestServer;
  let clients: GatewayClients;
  let target = "";

  before(async () => {
    server = await startTestServer(fastTimings);
    target = `127.0.0.1:${server.port}`;
    clients = gatewayClients(server.url);
  });
  after(async () => {
    clients.close();
    await server.close();
  });

  it("a core SIGKILLed mid-step: the play goes LOST, then FAILED naming the step", async () => {
    const id = "proc-play-sigkill";
    // "Play started", then the starts of steps 1 and 2: both are running when it hangs.
    const core = startCoreProcess(target, id, ["--era", "play", "--hang-after", "3"]);
    try {
      await core.waitForLine(/^hanging after 3 updates$/);
      const running = (await clients.api.getTaskStatus({ taskId: id })).task;
      assert.equal(running?.status, TaskStatus.RUNNING);
      assert.equal(running?.era, "play");
      assert.deepEqual(steps(running), ["1 Gathering Facts RUNNING", "2 install nginx RUNNING"]);
      core.signal("SIGKILL");
      await core.exited;
      const task = await waitForTask(clients.api, id, TaskStatus.FAILED, 10_000);
      assert.match(
        task.error,
        /the core vanished: its connection dropped while task 1 "Gathering Facts" was running/,
      );
      const events = await storedEvents(clients.api, id);
      assert.deepEqual(statusPath(events), ["RUNNING", "LOST", "FAILED"]);
      assert.deepEqual(
        steps(task),
        ["1 Gathering Facts FAILED", "2 install nginx FAILED"],
        "no step left running",
      );
      assert.match(task.steps[0]?.error ?? "", /the core vanished/);
    } finally {
      await core.cleanup();
    }
  });

  it("a core stopped mid-step (no answer to pings) is cut by keepalive: LOST, then FAILED", async () => {
    const id = "proc-play-sigstop";
    const core = startCoreProcess(target, id, ["--era", "play", "--hang-after", "3"]);
    try {
      await core.waitForLine(/^hanging after 3 updates$/);
      // A stopped process keeps its socket open: only the missing ping answers tell it is gone.
      core.signal("SIGSTOP");
      const task = await waitForTask(clients.api, id, TaskStatus.FAILED, 10_000);
      assert.match(task.error, /its connection dropped while task 1 "Gathering Facts" was running/);
      const events = await storedEvents(clients.api, id);
      assert.deepEqual(statusPath(events), ["RUNNING", "LOST", "FAILED"]);
    } finally {
      await core.cleanup();
    }
  });

  it("a core that runs the play to the end completes it, with its steps and counts", async () => {
    const id = "proc-play-complete";
    const core = startCoreProcess(target, id, ["--era", "play", "--playbook", "web.yml"]);
    try {
      const status = await core.waitForLine(/^play status: /);
      assert.equal(status, "play status: COMPLETED tasks=4", "GetPlayStatus as the core read it");
      assert.equal(await core.exited, 0);
      const task = await waitForTask(clients.api, id, TaskStatus.COMPLETED, 10_000);
      assert.equal(task.era, "play");
      assert.equal(task.origin, "core");
      assert.equal(task.error, "");
      assert.equal(task.progress, 100);
      assert.deepEqual(steps(task), [
        "1 Gathering Facts COMPLETED",
        "2 install nginx COMPLETED",
        "3 configure tls SKIPPED",
        "4 ping COMPLETED",
      ]);
      assert.equal(task.steps[3]?.output, "pong");
      assert.deepEqual(
        { ...task.result },
        { steps: "4", steps_ok: "3", steps_failed: "0", steps_skipped: "1" },
      );
      const events = await storedEvents(clients.api, id);
      assert.deepEqual(statusPath(events), ["RUNNING", "COMPLETED"]);
      assert.equal(events.filter((e) => e.type === "task.step").length, 8, "a start and an end per step");
    } finally {
      await core.cleanup();
    }
  });

  it("a core whose streams end without ending its play fails it after the grace", async () => {
    const id = "proc-play-no-completion";
    const core = startCoreProcess(target, id, ["--era", "play", "--no-completion"]);
    try {
      assert.equal(await core.exited, 0);
      const task = await waitForTask(clients.api, id, TaskStatus.FAILED, 10_000);
      assert.match(task.error, /core exited without reporting completion/);
      assert.equal(task.result.steps_ok, "3");
    } finally {
      await core.cleanup();
    }
  });
});
