/**
 * The command line for workflows, run as a real process against a real gateway with auth on:
 * `submit-workflow FILE.yaml` and `workflow show`, refusals of a malformed file and of a cycle with
 * nothing stored, `submit --after`, `cancel --filter` with and without --yes (and without a
 * terminal), and `retry [--failed-hosts]`.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TaskStatus } from "../../gen/spage/core/common_pb.js";
import { runCli } from "./helpers/cli-run.js";
import { type GatewayClients, gatewayClients } from "./helpers/event-watch.js";
import { DaemonPool, waitForTask } from "./helpers/test-daemon.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

describe("workflows on the command line", () => {
  let server: TestServer;
  let clients: GatewayClients;
  let daemons: DaemonPool;
  let dir: string;
  const cli = (args: readonly string[]) =>
    runCli([...args, "--endpoint", server.url], { env: { SPAGE_TOKEN: server.adminKey } });
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "spage-cli-wf-"));
    server = await startTestServer(["--auth", "on", "--sweep-interval-ms", "50"]);
    clients = gatewayClients(server.url, server.adminKey);
    daemons = new DaemonPool(server.url);
  });
  after(async () => {
    await daemons.closeAll();
    clients.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("submits a workflow file and draws it with its states", async () => {
    const path = file(
      "rollout.yaml",
      `workflow: rollout-42
tasks:
  - id: provision
    payload: {playbook: provision.yml, inventory: hosts.ini, target_labels: pool=none}
  - id: configure
    after: [provision]
    payload: {playbook: configure.yml}
  - id: smoke
    after: provision
    type: check
  - id: deploy
    after: [configure, smoke]
    priority: high
    metadata: {team: web}
    timeout_seconds: 600
`,
    );
    const r = await cli(["submit-workflow", path]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), [
      "workflow rollout-42: 4 task(s)",
      "provision",
      "configure",
      "smoke",
      "deploy",
    ]);
    const deploy = (await clients.api.getTaskStatus({ taskId: "deploy" })).task;
    assert.deepEqual(
      [deploy?.status, deploy?.dependsOn, deploy?.timeoutSeconds, deploy?.metadata],
      [TaskStatus.WAITING, ["configure", "smoke"], 600, { team: "web" }],
    );
    const again = await cli(["submit-workflow", path]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^workflow rollout-42: 4 task\(s\) \(already stored\)/);

    const shown = await cli(["workflow", "show", "rollout-42"]);
    assert.equal(shown.code, 0, shown.stderr);
    const lines = shown.stdout.trimEnd().split("\n");
    assert.equal(lines[0], "workflow rollout-42 (4 task(s): 1 PENDING, 3 WAITING)");
    assert.match(lines[1] ?? "", /^provision\s+PENDING$/);
    assert.match(lines[2] ?? "", /^├─ configure\s+WAITING\s+after provision$/);
    assert.match(lines[3] ?? "", /^│ {2}└─ deploy\s+WAITING\s+after configure, smoke$/);
    assert.match(lines[4] ?? "", /^└─ smoke\s+WAITING\s+after provision$/);
    const got = await cli(["get", "deploy"]);
    assert.match(got.stdout, /^workflow {3}rollout-42$/m);
    assert.match(got.stdout, /^after {6}configure, smoke$/m);
  });

  it("refuses a malformed file and a cycle, storing nothing", async () => {
    const before = (await clients.api.listTasks({ limit: 1 })).total;
    const bad = await cli(["submit-workflow", file("bad.yaml", "tasks:\n  - id: a\n    after: [b\n")]);
    assert.equal(bad.code, 2, bad.stdout);
    assert.match(bad.stderr, /^spage-gateway submit-workflow: .*bad\.yaml: .* at line \d+, column \d+/);
    const unknownKey = await cli([
      "submit-workflow",
      file("key.yaml", "tasks:\n  - id: a\n    needs: [b]\n"),
    ]);
    assert.equal(unknownKey.code, 2);
    assert.match(unknownKey.stderr, /tasks\[0\]: unknown key "needs"/);
    const cycle = await cli([
      "submit-workflow",
      file("cycle.yaml", "tasks:\n  - id: c1\n    after: c2\n  - id: c2\n    after: c1\n"),
    ]);
    assert.equal(cycle.code, 1);
    assert.match(
      cycle.stderr,
      /^spage-gateway submit-workflow: invalid_argument: .*c1 is on a cycle: c1 -> c2 -> c1/,
    );
    assert.equal((await clients.api.listTasks({ limit: 1 })).total, before);
  });

  it("submits after another task, and cancels by a filter only when confirmed", async () => {
    const root = await cli(["submit", "--type", "batch", "--id", "b-root", "--labels", "pool=none"]);
    assert.equal(root.code, 0, root.stderr);
    const first = await cli([
      "submit",
      "--type",
      "batch",
      "--id",
      "b-0",
      "--labels",
      "pool=none",
      "--metadata",
      "wave=w1",
    ]);
    assert.equal(first.code, 0, first.stderr);
    for (let i = 1; i <= 4; i++) {
      const r = await cli([
        "submit",
        "--type",
        "batch",
        "--id",
        `b-${i}`,
        "--after",
        "b-root",
        "--metadata",
        "wave=w1",
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await clients.api.getTaskStatus({ taskId: "b-3" })).task?.status, TaskStatus.WAITING);
    const listed = await cli(["list", "--label", "wave=w1"]);
    assert.match(listed.stdout, /5 of 5 task\(s\)$/m);

    const unconfirmed = await cli(["cancel", "--filter", "label=wave=w1,type=batch"]);
    assert.equal(unconfirmed.code, 2);
    assert.match(unconfirmed.stderr, /5 task\(s\) match; not canceled: add --yes/);
    assert.equal((await clients.api.listTasks({ label: "wave=w1", status: "CANCELED" })).total, 0);
    const dry = await cli(["cancel", "--filter", "label=wave=w1", "--dry-run"]);
    assert.match(dry.stdout, /5 task\(s\) would be canceled$/m);
    const everything = await cli(["cancel", "--filter", ""]);
    assert.equal(everything.code, 2);
    assert.match(everything.stderr, /add --all/);

    const done = await cli(["cancel", "--filter", "label=wave=w1,type=batch", "--limit", "3", "--yes"]);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /^3 canceled \(2 more match beyond --limit 3\)$/m);
    const rest = await cli(["cancel", "--filter", "label=wave=w1", "--yes", "--reason", "wave stopped"]);
    assert.match(rest.stdout, /^2 canceled$/m);
    assert.equal((await clients.api.listTasks({ label: "wave=w1", status: "CANCELED" })).total, 5);
    const bad = await cli(["cancel", "--filter", "colour=red", "--yes"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid --filter "colour=red"/);
  });

  it("retries a finished task, and its failed hosts only", async () => {
    const d = await daemons.connect({
      daemonId: "cli-retry",
      capacity: 2,
      labels: "pool=retry",
      token: server.adminKey,
    });
    await clients.api.submitTask({
      taskId: "r-site",
      type: "playbook",
      payload: { playbook: "site.yml", target_labels: "pool=retry" },
    });
    await d.waitFor("task.assigned", (e) => e.data.task_id === "r-site");
    await d.ack("task.accepted", { task_id: "r-site" });
    await d.ack("task.started", { task_id: "r-site", pid: "1" });
    // A core of the run reports a failed host.
    const progress = async (host: string, status: string) => {
      const stream = clients.exec.streamProgress(
        (async function* () {
          yield {
            taskId: "r-site",
            progress: 50,
            message: "install",
            metadata: { host, task: "install", status },
          };
        })(),
      );
      for await (const _ of stream) {
        // one acknowledgement per update
      }
    };
    await progress("web1", "ok");
    await progress("web2", "failed");
    await d.ack("task.failed", { task_id: "r-site", exit_code: "2", error: "web2 failed" });
    await waitForTask(clients.api, "r-site", TaskStatus.FAILED);
    const r = await cli(["retry", "r-site", "--failed-hosts", "--id", "r-site-2"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["r-site-2", "limited to web2"]);
    const whole = await cli(["retry", "r-site"]);
    assert.equal(whole.code, 0, whole.stderr);
    assert.match(whole.stdout.trim(), /^[0-9a-f-]{36}$/);
    const running = await cli(["retry", "r-site-2"]);
    assert.equal(running.code, 1);
    assert.match(
      running.stderr,
      /^spage-gateway retry: failed_precondition: task r-site-2 is (PENDING|ASSIGNED)/,
    );
  });
});
