/**
 * Runs a Spage core reports on its own, with no daemon involved, behaving on the wire exactly as the
 * upstream core does: RegisterTask twice, one lazily opened StreamProgress, start / done / skipped
 * updates, error reports, no run-end marker, and an exit by cancelling the stream. The run lives as
 * long as the core's stream is open, however silent; it ends when the stream ends (after a grace to
 * reconnect) by what the core reported, or goes LOST when the core vanished mid-step.
 *
 * Cores here are the grpc-js simulator in this process (helpers/core-simulator.ts) and the fake core
 * as a real child process (helpers/core-process.ts), killed or stopped mid-run.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { type Event, type Task, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { openSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { statusPath } from "./helpers/agent-harness.js";
import { startCoreProcess } from "./helpers/core-process.js";
import {
  type CoreRun,
  CoreSimulator,
  doneUpdate,
  errorReport,
  skippedUpdate,
  startUpdate,
} from "./helpers/core-simulator.js";
import { type GatewayClients, gatewayClients } from "./helpers/event-watch.js";
import { startTcpProxy } from "./helpers/tcp-proxy.js";
import { storedEvents, TestDaemon, waitForTask } from "./helpers/test-daemon.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

/** Timings short enough for tests: stream records renewed every 100 ms, pings every 200 ms. */
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

const nginxError = "No package matching 'nginx' found available, installed or updated";

function runOf(taskId: string): CoreRun {
  return {
    taskId,
    playbook: "playbooks/site.yml",
    inventory: "inventories/prod/hosts.ini",
    variables: { env: "prod" },
    engine: "local",
  };
}

/** Hosts as `host ok/failed/skipped/running`, for compact assertions. */
function recap(task: Task | undefined): string[] {
  return (task?.hosts ?? []).map((h) => `${h.host} ${h.ok}/${h.failed}/${h.skipped}/${h.running}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The reason of the status event that moved the task to `to`. */
function reasonOf(events: readonly Event[], to: string): string {
  return events.find((e) => e.type === "task.status" && e.data.to === to)?.data.reason ?? "";
}

/**
 * A gateway with clients, started before a suite's tests and closed after them with every core
 * they made. `silence` runs one core through a step that stays silent for `silentMs`, then
 * finishes it and exits as a core does.
 */
class SuiteGateway {
  server!: TestServer;
  clients!: GatewayClients;
  target = "";
  private readonly cores: CoreSimulator[] = [];

  constructor(args: readonly string[]) {
    before(async () => {
      this.server = await startTestServer(args);
      this.target = `127.0.0.1:${this.server.port}`;
      this.clients = gatewayClients(this.server.url);
    });
    after(async () => {
      for (const core of this.cores) await core.exit();
      this.clients.close();
      await this.server.close();
    });
  }

  core(taskId: string, target = this.target): CoreSimulator {
    const core = new CoreSimulator({ target, run: runOf(taskId), streamTimeoutMs: 120_000 });
    this.cores.push(core);
    return core;
  }

  async silence(taskId: string, silentMs: number) {
    const core = this.core(taskId);
    await core.register();
    core.send(startUpdate("Gathering Facts", "web1"));
    core.send(doneUpdate("Gathering Facts", "web1", "", 0));
    core.send(startUpdate("Install packages", "web1"));
    await core.waitForReplies(3);
    await sleep(silentMs);
    const during = (await this.clients.api.getTaskStatus({ taskId })).task;
    core.send(doneUpdate("Install packages", "web1", "", 1));
    await core.waitForReplies(4);
    const end = await core.exit();
    return { during, end };
  }
}

describe("core-only runs", { concurrency: true }, () => {
  describe("with the default timings", () => {
    const g = new SuiteGateway([]);

    it("a step silent for longer than the old 30 s window stays RUNNING, then ends COMPLETED", async () => {
      // Before, a core-only run went LOST 30 s after its last update, counted from no earlier than
      // a lease (15 s) after the gateway started: 46 s of silence covers both.
      const id = "default-silent-step";
      const { during, end } = await g.silence(id, 46_000);
      assert.equal(during?.status, TaskStatus.RUNNING, "alive while its stream is open");
      assert.equal(end?.code, grpc.status.CANCELLED, "the core cancels its stream on exit");
      const task = await waitForTask(g.clients.api, id, TaskStatus.COMPLETED, 15_000);
      assert.deepEqual(recap(task), ["web1 2/0/0/0"]);
      const events = await storedEvents(g.clients.api, id);
      assert.deepEqual(statusPath(events), ["RUNNING", "COMPLETED"]);
    });
  });

  describe("with short timings", { concurrency: 1 }, () => {
    const g = new SuiteGateway(fastTimings);
    const api = () => g.clients.api;

    it("stays RUNNING through a silence longer than lease and lost grace, then ends COMPLETED", async () => {
      const id = "fast-silent-step";
      const { during } = await g.silence(id, 2500);
      assert.equal(during?.status, TaskStatus.RUNNING);
      assert.deepEqual(recap(during), ["web1 1/0/0/1"], "the long step is shown running");
      assert.equal(during?.hosts[0]?.currentTask, "Install packages");
      const task = await waitForTask(api(), id, TaskStatus.COMPLETED, 10_000);
      assert.equal(task.progress, 100);
      assert.equal(task.error, "");
      assert.deepEqual(task.result, {
        hosts: "1",
        steps_ok: "2",
        steps_failed: "0",
        steps_skipped: "0",
        "recap.web1": "ok=2 failed=0 skipped=0",
      });
      assert.deepEqual(recap(task), ["web1 2/0/0/0"]);
      const events = await storedEvents(api(), id);
      assert.deepEqual(statusPath(events), ["RUNNING", "COMPLETED"]);
      assert.match(reasonOf(events, "COMPLETED"), /stream ended \(canceled by the core\)/);
    });

    it("ends COMPLETED when a runner half-closes its stream instead of cancelling", async () => {
      const id = "fast-half-close";
      const core = g.core(id);
      await core.register();
      core.send(startUpdate("ping", "web1"));
      core.send(doneUpdate("ping", "web1", "", 0));
      const end = await core.halfClose();
      assert.equal(end?.code, grpc.status.OK);
      const task = await waitForTask(api(), id, TaskStatus.COMPLETED, 10_000);
      assert.deepEqual(recap(task), ["web1 1/0/0/0"]);
      assert.match(reasonOf(await storedEvents(api(), id), "COMPLETED"), /half-closed by the core/);
    });

    it("ends FAILED naming the failing host, task and error when a host's step failed", async () => {
      const id = "fast-failed-host";
      const core = g.core(id);
      await core.register();
      core.runPlan([
        { name: "Gathering Facts", hosts: { web1: "ok", web2: "ok" } },
        { name: "Install nginx", hosts: { web1: "ok", web2: { failed: nginxError } } },
        { name: "Start nginx", hosts: { web1: "ok", web2: "skipped" } },
      ]);
      await core.waitForReplies(core.sent.length);
      await core.exit();
      const task = await waitForTask(api(), id, TaskStatus.FAILED, 10_000);
      assert.equal(task.error, `web2: Install nginx: ${nginxError}`);
      assert.deepEqual(recap(task), ["web1 3/0/0/0", "web2 1/1/1/0"]);
      assert.equal(task.hosts[1]?.failedTask, "Install nginx");
      assert.equal(task.hosts[1]?.lastError, nginxError);
      assert.equal(task.result.steps_failed, "1");
      assert.equal(task.result["recap.web2"], "ok=1 failed=1 skipped=1");
    });

    it("ends FAILED with the core's error report", async () => {
      const id = "fast-error-report";
      const core = g.core(id);
      await core.register();
      core.send(startUpdate("Gathering Facts", "web1"));
      core.send(doneUpdate("Gathering Facts", "web1", "", 0));
      core.send(errorReport(1, "template error while templating 'nginx_port'"));
      await core.waitForReplies(3);
      const running = (await api().getTaskStatus({ taskId: id })).task;
      assert.equal(running?.status, TaskStatus.RUNNING, "an error report alone does not end the run");
      await core.exit();
      const task = await waitForTask(api(), id, TaskStatus.FAILED, 10_000);
      assert.equal(task.error, "Error in level 1: template error while templating 'nginx_port'");
      assert.deepEqual(recap(task), ["web1 1/0/0/0"]);
    });

    it("ends FAILED when the core exits while a step still runs, and shows no host running", async () => {
      const id = "fast-exit-mid-step";
      const core = g.core(id);
      await core.register();
      core.send(startUpdate("Gathering Facts", "web1"));
      core.send(startUpdate("Gathering Facts", "web2"));
      core.send(doneUpdate("Gathering Facts", "web2", "", 0));
      await core.waitForReplies(3);
      await core.exit();
      const task = await waitForTask(api(), id, TaskStatus.FAILED, 10_000);
      assert.deepEqual(recap(task), ["web1 0/1/0/0", "web2 1/0/0/0"]);
      assert.match(task.error, /^web1: Gathering Facts: interrupted: the core's stream ended/);
    });

    it("continues the same run when the core reconnects within the grace", async () => {
      const id = "fast-reconnect";
      const proxy = await startTcpProxy(g.server.port);
      try {
        const first = g.core(id, `127.0.0.1:${proxy.port}`);
        await first.register();
        first.send(startUpdate("Gathering Facts", "web1"));
        first.send(doneUpdate("Gathering Facts", "web1", "", 0));
        first.send(startUpdate("Install packages", "web1"));
        await first.waitForReplies(3);
        // The network between core and gateway breaks mid-step: both sides see the connection drop.
        proxy.cut();
        const second = g.core(id);
        await second.register();
        second.send(doneUpdate("Install packages", "web1", "", 1));
        second.send(startUpdate("Start nginx", "web1"));
        second.send(doneUpdate("Start nginx", "web1", "", 2));
        await second.waitForReplies(3);
        await second.exit();
        const task = await waitForTask(api(), id, TaskStatus.COMPLETED, 10_000);
        assert.deepEqual(recap(task), ["web1 3/0/0/0"]);
        const events = await storedEvents(api(), id);
        assert.deepEqual(statusPath(events), ["RUNNING", "COMPLETED"]);
      } finally {
        await proxy.close();
      }
    });

    it("tells the core the run is over when an update arrives after it ended, and changes nothing", async () => {
      const id = "fast-after-end";
      const core = g.core(id);
      await core.register();
      core.send(startUpdate("ping", "web1"));
      core.send(doneUpdate("ping", "web1", "", 0));
      await core.waitForReplies(2);
      await core.exit();
      const ended = await waitForTask(api(), id, TaskStatus.COMPLETED, 10_000);

      const late = g.core(id);
      late.send(startUpdate("late task", "web1"));
      await late.waitForReplies(1);
      const reply = late.received[0];
      assert.equal(reply?.metadata.ack, "true", "the update is stored");
      assert.equal(reply?.metadata.run_over, "true");
      assert.equal(reply?.metadata.status, "COMPLETED");
      assert.match(reply?.message ?? "", /already ended as COMPLETED/);
      await late.exit();

      const task = (await api().getTaskStatus({ taskId: id })).task;
      assert.equal(task?.status, TaskStatus.COMPLETED);
      assert.deepEqual(recap(task), ["web1 1/0/0/0"], "the late start shows no host running");
      assert.deepEqual(task?.completedAt, ended.completedAt);
      const events = await storedEvents(api(), id);
      assert.equal(events[events.length - 1]?.data.task, "late task", "the late update is kept as an event");
    });

    it("keeps what the first RegisterTask set when the second carries empty values", async () => {
      const id = "fast-register-empty";
      const run = runOf(id);
      await g.clients.exec.registerTask({
        taskId: id,
        playbook: run.playbook,
        inventory: run.inventory,
        variables: { env: "prod" },
        engine: "local",
        metadata: { playbook: run.playbook, inventory: run.inventory, engine: "local" },
      });
      await g.clients.exec.registerTask({
        taskId: id,
        playbook: run.playbook,
        variables: { env: "" },
        metadata: { playbook: run.playbook, inventory: "", engine: "" },
      });
      const task = (await api().getTaskStatus({ taskId: id })).task;
      assert.deepEqual(task?.metadata, { playbook: run.playbook, inventory: run.inventory, engine: "local" });
      assert.equal(task?.payload.inventory, run.inventory);
      assert.deepEqual(JSON.parse(task?.payload.variables ?? "{}"), { env: "prod" });
      assert.equal(task?.origin, "core");
    });

    it("never hands a run a core registered to a daemon", async () => {
      const id = "fast-not-dispatched";
      const daemon = await TestDaemon.connect(g.server.url, {
        daemonId: "idle-daemon",
        capacity: 2,
        heartbeatMs: 100,
      });
      try {
        await g.clients.exec.registerTask({ taskId: id, playbook: "site.yml" });
        const submitted = await api().submitTask({ type: "job", taskId: "fast-not-dispatched-api" });
        // The daemon is handed the submitted task, never the registered one.
        const assigned = await daemon.waitFor("task.assigned");
        assert.equal(assigned.data.task_id, submitted.taskId);
        const task = (await api().getTaskStatus({ taskId: id })).task;
        assert.equal(task?.status, TaskStatus.PENDING);
        assert.equal(task?.daemonId, "");
        assert.ok(
          !daemon.received.some((e) => e.type === "task.assigned" && e.data.task_id === id),
          "the registered run was not assigned",
        );
      } finally {
        daemon.close();
        await daemon.ended;
      }
    });

    it("a core SIGKILLed mid-step goes LOST and then FAILED (policy fail)", async () => {
      const id = "fast-sigkill";
      const core = startCoreProcess(g.target, id, ["--upstream", "--hang-after", "3"]);
      try {
        await core.waitForLine(/^hanging after 3 updates$/);
        core.signal("SIGKILL");
        await core.exited;
        const task = await waitForTask(api(), id, TaskStatus.FAILED, 10_000);
        assert.match(
          task.error,
          /the core vanished: its connection dropped while "Gathering Facts" on web2 was running/,
        );
        assert.deepEqual(recap(task), ["web1 1/0/0/0", "web2 0/0/0/0"], "no host is left running");
        const events = await storedEvents(api(), id);
        assert.deepEqual(statusPath(events), ["RUNNING", "LOST", "FAILED"]);
      } finally {
        await core.cleanup();
      }
    });

    it("a core stopped mid-step (no answer to pings) is cut by keepalive, then goes LOST", async () => {
      const id = "fast-sigstop";
      const core = startCoreProcess(g.target, id, ["--upstream", "--hang-after", "3"]);
      try {
        await core.waitForLine(/^hanging after 3 updates$/);
        // A stopped process keeps its socket open: only the missing ping answers tell it is gone.
        core.signal("SIGSTOP");
        const task = await waitForTask(api(), id, TaskStatus.FAILED, 10_000);
        assert.match(task.error, /its connection dropped while "Gathering Facts" on web2 was running/);
        const events = await storedEvents(api(), id);
        assert.deepEqual(statusPath(events), ["RUNNING", "LOST", "FAILED"]);
      } finally {
        await core.cleanup();
      }
    });

    it("a submitted task run by hand whose core is killed follows on_lost requeue", async () => {
      const id = "fast-requeue";
      await api().submitTask({ taskId: id, type: "playbook", onLost: "requeue", maxAttempts: 2 });
      const core = startCoreProcess(g.target, id, ["--upstream", "--hang-after", "1"]);
      try {
        await core.waitForLine(/^hanging after 1 updates$/);
        core.signal("SIGKILL");
        await core.exited;
        const task = await waitForTask(
          api(),
          id,
          (t) => t.status === TaskStatus.PENDING && t.startedAt !== undefined,
          10_000,
        );
        assert.equal(task.daemonId, "");
        const events = await storedEvents(api(), id);
        assert.deepEqual(statusPath(events), ["RUNNING", "LOST", "PENDING"]);
        assert.match(reasonOf(events, "PENDING"), /policy requeue/);
      } finally {
        await core.cleanup();
      }
    });
  });

  describe("with keepalive pings off", { concurrency: 1 }, () => {
    const g = new SuiteGateway([...fastTimings, "--ping-interval-ms", "0"]);

    it("a stopped core's run stays RUNNING: only pings can tell it is gone", async () => {
      const id = "no-ping-sigstop";
      const core = startCoreProcess(g.target, id, ["--upstream", "--hang-after", "3"]);
      try {
        await core.waitForLine(/^hanging after 3 updates$/);
        core.signal("SIGSTOP");
        // Longer than the ping bound plus the lost grace of the suite above, where the run is LOST.
        await sleep(3000);
        const task = (await g.clients.api.getTaskStatus({ taskId: id })).task;
        assert.equal(task?.status, TaskStatus.RUNNING);
      } finally {
        await core.cleanup();
      }
    });
  });
});

describe("a gateway restarted under a core-only run", () => {
  it("ends the run by what its core reported once the core does not come back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spage-core-restart-"));
    const path = join(dir, "spage.db");
    const id = "restart-run";
    try {
      const first = await startTestServer(fastTimings, { store: openSqliteStore({ path }) });
      const core = new CoreSimulator({ target: `127.0.0.1:${first.port}`, run: runOf(id) });
      await core.register();
      core.send(startUpdate("ping", "web1"));
      core.send(doneUpdate("ping", "web1", "", 0));
      core.send(skippedUpdate("reboot", "web1"));
      await core.waitForReplies(3);
      // The gateway goes down with the core's stream open; the core never reconnects.
      await first.gateway.shutdown();
      await core.exit();

      const second = await startTestServer(fastTimings, { store: openSqliteStore({ path }) });
      const clients = gatewayClients(second.url);
      try {
        const task = await waitForTask(clients.api, id, TaskStatus.COMPLETED, 10_000);
        assert.deepEqual(recap(task), ["web1 1/0/1/0"]);
        const events = await storedEvents(clients.api, id);
        assert.deepEqual(statusPath(events), ["RUNNING", "COMPLETED"]);
        // The shutdown did not count as the core ending its stream: the record went stale.
        assert.match(reasonOf(events, "COMPLETED"), /the gateway holding it stopped answering/);
      } finally {
        clients.close();
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
