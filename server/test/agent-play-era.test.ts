/**
 * Plays run by the reference agent, every part a real process: a gateway child on a real SQLite
 * store with auth on and `--anonymous-execution none` (a core without credentials is let in
 * nowhere), `spage-gateway agent` children whose command is the fake core in its play-era mode
 * (fixtures/fake-spage-core.ts `--era play`), and plays started with ExecutePlay over connect-node
 * (gRPC) with an `execution` key. The cores report only through the agent's relay, which passes
 * their play-era calls on with the agent's credentials.
 *
 * - A play runs to COMPLETED with its steps and counts; its core found its play id and the relay in
 *   SPAGE_DAEMON_PLAY_ID and SPAGE_DAEMON_ENDPOINT (its command line names neither).
 * - A failing step ends the play FAILED naming the step, although the process exits 0.
 * - A core that exits 3 without ending its play: FAILED by the exit code.
 * - A core that ends its play COMPLETED (RegisterPlayCompletion) and then exits non-zero: the play
 *   stays COMPLETED, the agent takes the refusal of its report as the end, and runs the next play.
 * - The relay refuses every play-era call on a play not assigned to the agent, and ExecutePlay and
 *   CancelPlay altogether.
 * - `--core-era play` gives a task submitted with SubmitTask the play-era invocation too.
 */
import assert from "node:assert/strict";
import { hostname } from "node:os";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Task, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { PlayStatus } from "../../gen/spage/core/play_pb.js";
import {
  Cleanup,
  outputLines,
  type RunningGateway,
  runCli,
  startGateway,
  statusPath,
  storedEvents,
  tempDir,
  waitForStatus,
} from "./helpers/agent-harness.js";
import { type AgentProcess, startAgentProcess } from "./helpers/agent-process.js";
import { fakeCoreCommand } from "./helpers/core-process.js";
import { type GatewayClients, gatewayClients } from "./helpers/event-watch.js";

/**
 * The agent's --command running the fake core in the play era. `raw` parts go in as they are
 * (placeholders such as {endpoint}); `extra` ones are shell-quoted.
 */
function playCoreCommand(extra: readonly string[] = [], raw: readonly string[] = []): string {
  return fakeCoreCommand(
    [
      "--era",
      "play",
      "--playbook",
      "{playbook}",
      "--inventory",
      "{inventory}",
      "--variables",
      "{variables_json}",
      ...raw,
    ],
    extra,
  );
}

/** Steps as `n name STATUS`, for compact assertions. */
function steps(task: Task | undefined): string[] {
  return (task?.steps ?? []).map((s) => `${s.number} ${s.name} ${TaskStatus[s.status]}`);
}

/** Waits (bounded) until the task's stored output has a line matching `match`; returns the lines. */
async function outputUntil(api: GatewayClients["api"], taskId: string, match: RegExp): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { lines } = outputLines(await storedEvents(api, taskId));
    if (lines.some((l) => match.test(l))) return lines;
    if (Date.now() > deadline) throw new Error(`no output line matching ${match}:\n${lines.join("\n")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("agent: plays of today's Spage cores through the relay", { timeout: 60_000 }, () => {
  const suite = new Cleanup();
  let g: RunningGateway;
  let client: GatewayClients;
  let agentKey = "";

  before(async () => {
    const dir = tempDir(suite, "spage-agent-play-");
    g = await startGateway(suite, dir, { extraArgs: ["--auth", "on", "--anonymous-execution", "none"] });
    const key = async (name: string, scopes: string) => {
      const res = await runCli(suite, [
        "keys",
        "create",
        "--name",
        name,
        "--scopes",
        scopes,
        "--data-dir",
        dir,
        "--quiet",
      ]);
      assert.equal(res.code, 0, res.stderr);
      return res.stdout.trim();
    };
    agentKey = await key("play-agent", "agent,execution");
    client = gatewayClients(g.url, await key("play-client", "execution,tasks:read,tasks:write"));
    suite.add(() => client.close());
  });
  after(() => suite.run());

  /** Starts an agent running the fake core with `command`; stopped at the end of the test. */
  function agentFor(
    cleanup: Cleanup,
    daemonId: string,
    command: string,
    extraArgs: string[] = [],
  ): AgentProcess {
    const agent = startAgentProcess({
      endpoint: g.url,
      daemonId,
      command,
      extraArgs,
      env: { SPAGE_TOKEN: agentKey },
    });
    cleanup.add(() => agent.cleanup());
    return agent;
  }

  /** The agent's warnings and errors, for assertion messages. */
  const warnings = (agent: AgentProcess) => agent.logs.filter((l) => l.level !== "info");

  it("ExecutePlay runs through the agent's relay to COMPLETED with its steps and counts", async () => {
    const cleanup = new Cleanup();
    try {
      const id = "agent-play-ok";
      const started = await client.exec.executePlay({
        playId: id,
        playbook: "site.yml",
        inventory: "hosts.ini",
        variables: { env: "test" },
        executor: "local",
      });
      assert.equal(started.playId, id);
      // Neither the endpoint nor the play id is on the command line: the core reads them from
      // SPAGE_DAEMON_ENDPOINT and SPAGE_DAEMON_PLAY_ID, and registers the play first.
      const agent = agentFor(cleanup, "agent-play-ok", playCoreCommand(["--register"]));
      const task = await waitForStatus(client.api, id, TaskStatus.COMPLETED, 20_000);
      assert.equal(task.era, "play");
      assert.equal(task.origin, "api");
      assert.equal(task.error, "");
      assert.deepEqual(steps(task), [
        "1 Gathering Facts COMPLETED",
        "2 install nginx COMPLETED",
        "3 configure tls SKIPPED",
        "4 ping COMPLETED",
      ]);
      assert.equal(task.steps[1]?.output, "nginx 1.24 installed");
      assert.equal(task.result.steps, "4");
      assert.equal(task.result.steps_ok, "3");
      assert.equal(task.result.steps_failed, "0");
      assert.equal(task.result.steps_skipped, "1");
      assert.deepEqual(
        task.attempts.map((a) => `${a.daemonId} ${a.outcome}`),
        ["agent-play-ok completed"],
      );
      assert.equal(task.metadata.executor, "local");

      const play = (await client.exec.getPlayStatus({ playId: id })).play;
      assert.equal(play?.status, PlayStatus.COMPLETED);
      assert.equal(play?.hostname, hostname(), "the agent's host runs the play");
      assert.deepEqual(
        play?.tasks.map((t) => `${t.id} ${t.name}`),
        ["1 Gathering Facts", "2 install nginx", "3 configure tls", "4 ping"],
      );

      const started1 = await agent.waitForLog((l) => l.msg === "task started" && l.task === id);
      assert.equal(started1.era, "play");
      const ended = await agent.waitForLog((l) => l.msg === "task ended" && l.task === id);
      assert.equal(ended.exitCode, 0);
      const lines = await outputUntil(client.api, id, /^play status: /);
      assert.equal(lines[0], "PLAY [site.yml] ****", lines.join("\n"));
      assert.ok(lines.includes("localhost : ok=3 failed=0 skipped=1"), lines.join("\n"));
      assert.ok(lines.includes("play status: COMPLETED tasks=4"), "the core read its play through the relay");
      const events = await storedEvents(client.api, id);
      assert.deepEqual(statusPath(events), ["ASSIGNED", "RUNNING", "COMPLETED"]);
      assert.equal(events.filter((e) => e.type === "task.step").length, 8, "every step update arrived");
      assert.deepEqual(warnings(agent), [], agent.stderr());
    } finally {
      await cleanup.run();
    }
  });

  it("a play with a failing step ends FAILED naming the step, though its process exits 0", async () => {
    const cleanup = new Cleanup();
    try {
      const id = "agent-play-failed-step";
      await client.exec.executePlay({ playId: id, playbook: "site.yml" });
      const agent = agentFor(cleanup, "agent-play-fail", playCoreCommand(["--fail-step", "2"]));
      const task = await waitForStatus(client.api, id, TaskStatus.FAILED, 20_000);
      assert.match(task.error, /task 2 "install nginx" failed/);
      assert.match(task.error, /task 2 "install nginx": No package matching 'nginx' found available/);
      assert.equal(task.steps[1]?.status, TaskStatus.FAILED);
      assert.equal(task.result.steps_failed, "1");
      assert.equal(task.result.steps_ok, "2");
      // The agent's report of exit code 0 came second: refused, and taken as the end.
      const refused = await agent.waitForLog(
        (l) => l.msg === "the run had already ended; the gateway keeps that end",
      );
      assert.equal(refused.task, id);
      assert.equal(refused.status, "FAILED");
      assert.equal(refused.reported, "task.completed");
      assert.equal((await client.api.getTaskStatus({ taskId: id })).task?.status, TaskStatus.FAILED);
      assert.deepEqual(warnings(agent), [], agent.stderr());
    } finally {
      await cleanup.run();
    }
  });

  it("a core that exits 3 without ending its play: FAILED by the exit code", async () => {
    const cleanup = new Cleanup();
    try {
      const id = "agent-play-exit-3";
      await client.exec.executePlay({ playId: id, playbook: "site.yml" });
      const agent = agentFor(
        cleanup,
        "agent-play-exit3",
        playCoreCommand(["--no-completion", "--exit-code", "3"]),
      );
      const task = await waitForStatus(client.api, id, TaskStatus.FAILED, 20_000);
      assert.equal(task.result.exit_code, "3");
      assert.equal(task.error, "exit code 3");
      assert.deepEqual(
        task.attempts.map((a) => a.outcome),
        ["failed"],
      );
      assert.equal(task.result.steps_ok, undefined, "the agent's report ended it, not the core");
      assert.equal(task.steps.length, 4, "every step was recorded");
      const ended = await agent.waitForLog((l) => l.msg === "task ended" && l.task === id);
      assert.equal(ended.exitCode, 3);
      assert.deepEqual(warnings(agent), [], agent.stderr());
    } finally {
      await cleanup.run();
    }
  });

  it("a core that ends its play COMPLETED and then exits non-zero: the first end stands", async () => {
    const cleanup = new Cleanup();
    try {
      const id = "agent-play-first-wins";
      await client.exec.executePlay({ playId: id, playbook: "site.yml" });
      const command = playCoreCommand(["--completion-call", "--exit-code", "4"]);
      const agent = agentFor(cleanup, "agent-play-first", command);
      const refused = await agent.waitForLog(
        (l) => l.msg === "the run had already ended; the gateway keeps that end" && l.task === id,
        20_000,
      );
      assert.equal(refused.status, "COMPLETED");
      assert.equal(refused.reported, "task.failed");
      const task = (await client.api.getTaskStatus({ taskId: id })).task;
      assert.equal(task?.status, TaskStatus.COMPLETED);
      assert.equal(task?.error, "");
      assert.deepEqual(
        task?.attempts.map((a) => a.outcome),
        ["completed"],
      );
      assert.deepEqual(statusPath(await storedEvents(client.api, id)), ["ASSIGNED", "RUNNING", "COMPLETED"]);

      // The agent let the play go (its slot is free) and does not report it again: it runs the next.
      const next = "agent-play-first-wins-next";
      await client.exec.executePlay({ playId: next, playbook: "site.yml" });
      await waitForStatus(client.api, next, TaskStatus.COMPLETED, 20_000);
      await agent.waitForLog(
        (l) => l.msg === "the run had already ended; the gateway keeps that end" && l.task === next,
      );
      assert.equal(
        agent.count((l) => l.msg === "task started"),
        2,
        agent.stderr(),
      );
      assert.equal(
        agent.count((l) => l.msg === "task ended" && l.task === id),
        1,
        agent.stderr(),
      );
      assert.equal(
        agent.count(
          (l) => l.msg === "the run had already ended; the gateway keeps that end" && l.task === id,
        ),
        1,
      );
      assert.equal((await client.api.getTaskStatus({ taskId: id })).task?.status, TaskStatus.COMPLETED);
      assert.deepEqual(warnings(agent), [], agent.stderr());
    } finally {
      await cleanup.run();
    }
  });

  it("the relay refuses play-era calls on a play not assigned to the agent, and ExecutePlay and CancelPlay", async () => {
    const cleanup = new Cleanup();
    try {
      const victim = "agent-play-victim";
      // A play its own core registered: never handed to a daemon.
      await client.exec.registerPlay({ playId: victim, playbook: "site.yml" });
      const before = (await client.api.getTaskStatus({ taskId: victim })).task;
      const id = "agent-play-toucher";
      await client.exec.executePlay({ playId: id, playbook: "site.yml" });
      // This core names the relay and its play id on its command line ({endpoint}, {play_id}).
      const command = playCoreCommand(
        ["--also-touch", victim],
        ["--daemon-grpc", "{endpoint}", "--play-id", "{play_id}"],
      );
      const agent = agentFor(cleanup, "agent-play-touch", command);
      await waitForStatus(client.api, id, TaskStatus.COMPLETED, 20_000);
      const lines = await outputUntil(client.api, id, /^play status: /);
      for (const what of ["register", "play progress", "step progress", "status", "completion"]) {
        assert.ok(lines.includes(`touch ${what}: permission_denied`), `${what}:\n${lines.join("\n")}`);
      }
      const afterwards = (await client.api.getTaskStatus({ taskId: victim })).task;
      assert.deepEqual(afterwards, before, "the play not assigned to the agent is untouched");
      assert.ok(
        agent.count((l) => l.msg === "a core called for a task not assigned to this agent; refused") >= 3,
      );
      assert.ok(
        agent.count((l) => l.msg === "a core reported on a task not assigned to this agent; refused") >= 2,
      );

      // The relay starts and cancels nothing, for any play.
      const listening = await agent.waitForLog((l) => l.msg === "core relay listening");
      const relay = gatewayClients(`http://${String(listening.address)}`);
      cleanup.add(() => relay.close());
      const denied = (err: unknown) => ConnectError.from(err).code === Code.PermissionDenied;
      await assert.rejects(
        relay.exec.executePlay({ playId: "agent-play-sneaky", playbook: "x.yml" }),
        denied,
      );
      await assert.rejects(relay.exec.cancelPlay({ playId: id }), denied);
      await assert.rejects(relay.exec.getPlayStatus({ playId: victim }), denied);
      await assert.rejects(client.api.getTaskStatus({ taskId: "agent-play-sneaky" }), (err) => {
        return ConnectError.from(err).code === Code.NotFound;
      });
    } finally {
      await cleanup.run();
    }
  });

  it("--core-era play gives a task submitted with SubmitTask the play-era invocation", async () => {
    const cleanup = new Cleanup();
    try {
      const id = "agent-forced-play";
      await client.api.submitTask({ taskId: id, type: "playbook", payload: { playbook: "site.yml" } });
      const agent = agentFor(cleanup, "agent-forced-play", playCoreCommand(), ["--core-era", "play"]);
      const task = await waitForStatus(client.api, id, TaskStatus.COMPLETED, 20_000);
      assert.equal(task.era, "", "the task itself stays a task-era task");
      assert.equal(task.steps.length, 4, "its core reported the play's steps");
      const started = await agent.waitForLog((l) => l.msg === "task started" && l.task === id);
      assert.equal(started.era, "play");
    } finally {
      await cleanup.run();
    }
  });
});
