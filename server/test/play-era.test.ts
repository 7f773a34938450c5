/**
 * Today's Spage cores: the play era of SpageExecution, served beside the task era. A simulated
 * core of today (helpers/play-core.ts: grpc-js with upstream's own proto, loaded by proto-loader)
 * runs plays with interleaved, duplicated step updates from concurrent senders over two streams,
 * and ends them each way upstream can: a FAILED play update, a COMPLETED one, RegisterPlayCompletion,
 * or only its streams ending. Each play is read back through GetPlayStatus (the simulator), the
 * task era's GetTaskStatus and WatchEvents (connect-node) and ListTasks.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { type Task, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { runCli } from "./helpers/cli-run.js";
import { CoreSimulator } from "./helpers/core-simulator.js";
import { type GatewayClients, gatewayClients, watchUntil } from "./helpers/event-watch.js";
import { PlayCore, runPlay, type StepPlan, stepUpdates } from "./helpers/play-core.js";
import { storedEvents, waitForTask } from "./helpers/test-daemon.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

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

const plan: readonly StepPlan[] = [
  { name: "Gathering Facts", outcome: "ok" },
  { name: "install nginx", outcome: "failed", error: "No package matching 'nginx'" },
  { name: "configure", outcome: "skipped" },
  { name: "ping", outcome: "ok", output: "pong" },
];

const okPlan: readonly StepPlan[] = [
  { name: "Gathering Facts", outcome: "ok" },
  { name: "copy files", outcome: "ok" },
  { name: "restart", outcome: "ok" },
];

/** Steps as `n name STATUS`, for compact assertions. */
function steps(task: Task | undefined): string[] {
  return (task?.steps ?? []).map((s) => `${s.number} ${s.name} ${TaskStatus[s.status]}`);
}

describe("play era: a core of today reporting plays", () => {
  let server: TestServer;
  let clients: GatewayClients;
  let target: string;
  const cores: PlayCore[] = [];
  const core = () => {
    const c = new PlayCore(target);
    cores.push(c);
    return c;
  };

  before(async () => {
    server = await startTestServer(fastTimings);
    target = `127.0.0.1:${server.port}`;
    clients = gatewayClients(server.url);
  });
  after(async () => {
    for (const c of cores) c.close();
    clients.close();
    await server.close();
  });

  it("a play ended by a FAILED update: steps, error and recap everywhere", async () => {
    const c = core();
    const id = "play-failed-1";
    const { play, tasks } = await runPlay(c, id, plan, "failed", {
      senders: 3,
      taskStreams: 2,
      duplicates: true,
      playError: "task install nginx failed",
    });
    assert.equal(play.replies.length, 2, "each play update is answered");
    assert.ok(tasks.every((t) => t.replies.length > 0));

    const task = await waitForTask(clients.api, id, TaskStatus.FAILED);
    assert.equal(task.era, "play");
    assert.equal(task.type, "playbook");
    assert.equal(task.origin, "core");
    assert.deepEqual(steps(task), [
      "1 Gathering Facts COMPLETED",
      "2 install nginx FAILED",
      "3 configure SKIPPED",
      "4 ping COMPLETED",
    ]);
    assert.match(task.error, /task install nginx failed/);
    assert.match(task.error, /task 2 "install nginx": No package matching 'nginx'/);
    assert.equal(task.result.steps, "4");
    assert.equal(task.progress, 100, "every step ended");
    assert.equal(task.result.steps_failed, "1");
    assert.equal(task.result.steps_ok, "2");
    assert.equal(task.result.steps_skipped, "1");
    const ping = task.steps[3];
    assert.equal(ping?.output, "pong");
    assert.ok((ping?.duration ?? 0) > 0, "duration from the metrics");
    assert.equal(ping?.metrics?.goroutines, 12);

    const status = await c.unary("getPlayStatus", { playId: id });
    assert.equal(status.play.status, "PLAY_STATUS_FAILED");
    assert.equal(status.play.id, id);
    assert.deepEqual(
      status.play.tasks.map(
        (t: { id: number; name: string; status: string }) => `${t.id} ${t.name} ${t.status}`,
      ),
      [
        "1 Gathering Facts TASK_STATUS_COMPLETED",
        "2 install nginx TASK_STATUS_FAILED",
        "3 configure TASK_STATUS_SKIPPED",
        "4 ping TASK_STATUS_COMPLETED",
      ],
    );
    assert.equal(status.play.tasks[1].error, "No package matching 'nginx'");

    const events = await storedEvents(clients.api, id);
    const types = events.map((e) => e.type);
    assert.ok(types.includes("play.progress"));
    assert.equal(
      types.filter((t) => t === "task.step").length,
      16,
      "every update (duplicates too) is an event",
    );
    assert.deepEqual(
      events.filter((e) => e.type === "task.status").map((e) => `${e.data.from}>${e.data.to}`),
      ["PENDING>RUNNING", "RUNNING>FAILED"],
    );

    // The CLI shows the play like any task: its steps, result and error; watch replays its events.
    const get = await runCli(["get", id, "--endpoint", server.url]);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /status\s+FAILED/);
    assert.match(get.stdout, /type\s+playbook \(play\)/);
    assert.match(
      get.stdout,
      /step\s+2\s+FAILED\s+install nginx \d+\.\d+s\s+error: No package matching 'nginx'/,
    );
    assert.match(get.stdout, /step\s+4\s+COMPLETED\s+ping/);
    assert.match(get.stdout, /result .*steps_failed=1/);
    const listed1 = await runCli(["list", "--endpoint", server.url]);
    assert.match(listed1.stdout, new RegExp(`${id}\\s+FAILED\\s+playbook`));
    const watched = await runCli([
      "watch",
      "--task",
      id,
      "--after",
      "1",
      "--endpoint",
      server.url,
      "--until-end",
    ]);
    assert.equal(watched.code, 1, "watch --until-end exits 1 for a failed run");
    assert.match(watched.stdout, /task\.step .*name="install nginx" status=FAILED/);
    assert.match(watched.stdout, /play\.progress .*status=FAILED/);

    const list = await clients.api.listTasks({ limit: 10 });
    const listed = list.tasks.find((t) => t.id === id);
    assert.equal(listed?.status, TaskStatus.FAILED);
    assert.equal(listed?.steps.length, 0, "listings leave steps out");
  });

  it("a play ended by a COMPLETED update, and one by RegisterPlayCompletion", async () => {
    const [a, b] = [core(), core()];
    await Promise.all([
      runPlay(a, "play-ok-1", okPlan, "completed"),
      runPlay(b, "play-ok-2", okPlan, "completion-call"),
    ]);
    for (const id of ["play-ok-1", "play-ok-2"]) {
      const task = await waitForTask(clients.api, id, TaskStatus.COMPLETED);
      assert.equal(task.progress, 100);
      assert.equal(task.error, "");
      assert.equal(task.result.steps_ok, "3");
      assert.deepEqual(steps(task), [
        "1 Gathering Facts COMPLETED",
        "2 copy files COMPLETED",
        "3 restart COMPLETED",
      ]);
    }
    // A repeat of the completion is accepted; a different one is refused.
    await b.unary("registerPlayCompletion", { playId: "play-ok-2", status: "PLAY_STATUS_COMPLETED" });
    await assert.rejects(
      b.unary("registerPlayCompletion", { playId: "play-ok-2", status: "PLAY_STATUS_FAILED", error: "x" }),
      (err: grpc.ServiceError) =>
        err.code === grpc.status.FAILED_PRECONDITION && /already ended as COMPLETED/.test(err.details),
    );
  });

  it("a play whose streams end without completion fails after the grace", async () => {
    const c = core();
    const id = "play-nocompletion-1";
    await runPlay(c, id, okPlan, "streams-only");
    const task = await waitForTask(clients.api, id, TaskStatus.FAILED, 5000);
    assert.match(task.error, /core exited without reporting completion/);
    assert.deepEqual(steps(task), [
      "1 Gathering Facts COMPLETED",
      "2 copy files COMPLETED",
      "3 restart COMPLETED",
    ]);
  });

  it("out-of-order and repeated step updates never move a finished step back", async () => {
    const c = core();
    const id = "play-order-1";
    const play = c.playStream();
    await play.send({ playId: id, status: "PLAY_STATUS_PENDING", output: "Play started" });
    const t = c.taskStream();
    const [start, end] = stepUpdates(id, 1, { name: "slow", outcome: "ok" });
    await t.send(end);
    await t.send(start);
    await t.send(end);
    await t.send(start);
    await t.answered(4);
    const mid = await waitForTask(clients.api, id, (x) => x.steps.length === 1);
    assert.deepEqual(steps(mid), ["1 slow COMPLETED"]);
    assert.equal(
      t.replies.at(-1)?.result.status,
      "TASK_STATUS_COMPLETED",
      "the reply carries the kept state",
    );
    await play.send({ playId: id, status: "PLAY_STATUS_COMPLETED", output: "Play completed" });
    await Promise.all([play.closeSend(), t.closeSend()]);
    await waitForTask(clients.api, id, TaskStatus.COMPLETED);
  });

  it("a late step update of an ended play still fills its step table", async () => {
    const c = core();
    const id = "play-late-1";
    const play = c.playStream();
    await play.send({ playId: id, status: "PLAY_STATUS_PENDING", output: "Play started" });
    const t = c.taskStream();
    const [start, end] = stepUpdates(id, 1, { name: "last", outcome: "ok" });
    await t.send(start);
    await t.answered(1);
    await play.send({ playId: id, status: "PLAY_STATUS_COMPLETED", output: "Play completed" });
    await play.answered(2);
    await t.send(end);
    await t.answered(2);
    await Promise.all([play.closeSend(), t.closeSend()]);
    const task = await waitForTask(clients.api, id, (x) => x.steps[0]?.status === TaskStatus.COMPLETED);
    assert.equal(task.status, TaskStatus.COMPLETED);
    assert.equal(task.result.steps_ok, "1");
  });

  it("bad updates get a clear answer on the stream and the play keeps going", async () => {
    const c = core();
    const id = "play-bad-1";
    const play = c.playStream();
    await play.send({ playId: id, status: "PLAY_STATUS_UNSPECIFIED" });
    await play.send({ playId: "", status: "PLAY_STATUS_RUNNING" });
    await play.send({ playId: id, status: "PLAY_STATUS_RUNNING", output: "Play started" });
    await play.answered(3);
    assert.match(play.replies[0]?.error, /invalid_argument: .*status/);
    assert.match(play.replies[1]?.error, /invalid_argument: .*play_id/);
    assert.equal(play.replies[2]?.output, "ack");
    const t = c.taskStream();
    await t.send({ playId: id, taskId: 1 });
    await t.answered(1);
    assert.match(t.replies[0]?.result.error, /invalid_argument: .*result/);
    await play.send({ playId: id, status: "PLAY_STATUS_COMPLETED" });
    await Promise.all([play.closeSend(), t.closeSend()]);
    await waitForTask(clients.api, id, TaskStatus.COMPLETED);
  });

  it("ExecutePlay queues a play, CancelPlay cancels it, GetPlayStatus reads it", async () => {
    const c = core();
    const id = "play-exec-1";
    const req = {
      playId: id,
      playbook: "spage://bundle/b1#site.yml",
      inventory: "hosts.ini",
      variables: { env: "prod" },
      executor: "local",
      metadata: { team: "ops" },
      bundleId: "b1",
      bundleRootPath: "site",
    };
    const first = await c.unary("executePlay", req);
    assert.equal(first.success, true);
    assert.equal(first.playId, id);
    const again = await c.unary("executePlay", req);
    assert.equal(again.playId, id, "idempotent on play_id");
    const task = (await clients.api.getTaskStatus({ taskId: id })).task;
    assert.equal(task?.status, TaskStatus.PENDING);
    assert.equal(task?.origin, "api");
    assert.equal(task?.era, "play");
    assert.deepEqual(task?.payload, {
      playbook: "spage://bundle/b1#site.yml",
      inventory: "hosts.ini",
      variables: '{"env":"prod"}',
    });
    assert.deepEqual(task?.metadata, {
      team: "ops",
      executor: "local",
      bundle_id: "b1",
      bundle_root_path: "site",
    });
    const status = await c.unary("getPlayStatus", { playId: id });
    assert.equal(status.play.status, "PLAY_STATUS_PENDING");
    assert.equal(status.play.playbook, "spage://bundle/b1#site.yml");
    assert.deepEqual(status.play.variables, { env: "prod" });
    await c.unary("cancelPlay", { playId: id, reason: "not today" });
    const canceled = await waitForTask(clients.api, id, TaskStatus.CANCELED);
    assert.equal(canceled.error, "not today");
    await assert.rejects(
      c.unary("executePlay", { ...req, playbook: "other.yml" }),
      (err: grpc.ServiceError) => err.code === grpc.status.ALREADY_EXISTS,
    );
    await assert.rejects(
      c.unary("getPlayStatus", { playId: "nope-play" }),
      (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND,
    );
  });

  it("both eras at once: a task-era core and a play-era core report to one gateway together", async () => {
    const old = new CoreSimulator({
      target,
      run: {
        taskId: "era-task-1",
        playbook: "site.yml",
        inventory: "hosts.ini",
        variables: {},
        engine: "local",
      },
    });
    const today = core();
    try {
      await old.register();
      const playRun = runPlay(today, "era-play-1", plan, "failed", { duplicates: true });
      old.runPlan([
        { name: "Gathering Facts", hosts: { web1: "ok", web2: "ok" } },
        { name: "Install nginx", hosts: { web1: "ok", web2: { failed: "No package nginx" } } },
      ]);
      await Promise.all([playRun, old.waitForReplies(old.sent.length)]);
      await old.exit();
      const [taskEra, playEra] = await Promise.all([
        waitForTask(clients.api, "era-task-1", TaskStatus.FAILED, 5000),
        waitForTask(clients.api, "era-play-1", TaskStatus.FAILED, 5000),
      ]);
      assert.equal(taskEra.era, "");
      assert.equal(taskEra.steps.length, 0);
      assert.deepEqual(
        taskEra.hosts.map((h) => `${h.host} ${h.ok}/${h.failed}`),
        ["web1 2/0", "web2 1/1"],
      );
      assert.match(taskEra.error, /web2: Install nginx: No package nginx/);
      assert.equal(playEra.era, "play");
      assert.equal(playEra.hosts.length, 0, "the play era sends no host");
      assert.equal(steps(playEra).length, 4);
      // Each era's reads work on the other's runs too: a play id is a task id.
      const asPlay = await today.unary("getPlayStatus", { playId: "era-task-1" });
      assert.equal(asPlay.play.status, "PLAY_STATUS_FAILED");
      const asTask = (await clients.exec.getTaskStatus({ taskId: "era-play-1" })).task;
      assert.equal(asTask?.status, TaskStatus.FAILED);
    } finally {
      await old.exit();
    }
  });

  it("WatchEvents follows a play live, steps and end included", async () => {
    const c = core();
    const id = "play-watch-1";
    const seen = watchUntil(
      clients.api,
      { taskId: id },
      (evs) => evs.some((e) => e.type === "task.status" && e.data.to === "COMPLETED"),
      10_000,
    );
    await new Promise((r) => setTimeout(r, 100));
    await runPlay(c, id, okPlan, "completed");
    const events = await seen;
    const stepEvents = events.filter((e) => e.type === "task.step");
    assert.equal(stepEvents.length, 6);
    assert.ok(stepEvents.some((e) => e.data.status === "COMPLETED" && e.data.name === "restart"));
    for (let i = 1; i < events.length; i++) {
      assert.ok((events[i]?.sequence ?? 0n) > (events[i - 1]?.sequence ?? 0n), "in sequence order");
    }
  });
});
