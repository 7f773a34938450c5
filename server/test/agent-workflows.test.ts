/**
 * Workflows end to end, every part a real process: a gateway child, `spage-gateway agent` children
 * running real shell commands (and the fake Spage core), tasks submitted with SubmitTasks.
 *
 * - A three-step workflow runs in order; with its first step failing, the rest end SKIPPED with the
 *   cause in their error and never run.
 * - A diamond (A -> B, C -> D) on two agents runs B and C at the same time and D only after both.
 * - A gateway SIGKILLed while a step runs and the next ones wait: after the restart the step's
 *   completion still queues the next, and every step runs once.
 * - A retry of only the failed hosts hands exactly those hosts to the process (`--limit`).
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { TaskStatus } from "../../gen/spage/core/common_pb.js";
import { shellQuote } from "../src/agent/command-template.js";
import {
  Cleanup,
  freePort,
  outputLines,
  startGateway,
  storedEvents,
  tempDir,
  waitForStatus,
} from "./helpers/agent-harness.js";
import { startAgentProcess } from "./helpers/agent-process.js";
import { fakeCoreCommand } from "./helpers/core-process.js";

/**
 * A step as a shell command: appends "start <id> <ms>" to `log`, sleeps `seconds`, appends
 * "end <id> <ms>", and fails when the task's playbook is fail.yml.
 */
function stepCommand(log: string, seconds: number): string {
  const stamp = `$(node -e 'process.stdout.write(String(Date.now()))')`;
  return [
    `echo "start {task_id} ${stamp}" >> ${shellQuote(log)}`,
    `sleep ${seconds}`,
    `echo "end {task_id} ${stamp}" >> ${shellQuote(log)}`,
    `test {playbook} != fail.yml`,
  ].join("; ");
}

/** The log's lines as [what, id, ms]. */
function readLog(log: string): [string, string, number][] {
  if (!existsSync(log)) return [];
  return readFileSync(log, "utf8")
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [what, id, ms] = l.split(" ");
      return [what ?? "", id ?? "", Number(ms)];
    });
}

function timeOf(log: [string, string, number][], what: string, id: string): number {
  const line = log.find(([w, i]) => w === what && i === id);
  assert.ok(line, `no "${what} ${id}" in the log: ${JSON.stringify(log)}`);
  return line[2];
}

describe("workflows with real agents", () => {
  it("runs a three-step workflow in order, and ends the rest with the cause when the first fails", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-wf-");
      const g = await startGateway(cleanup, dir);
      const log = join(dir, "steps.log");
      const agent = startAgentProcess({
        endpoint: g.url,
        daemonId: "wf-agent",
        capacity: 4,
        command: stepCommand(log, 0.2),
      });
      cleanup.add(() => agent.cleanup());
      const chain = (prefix: string, first: string) => [
        { taskId: `${prefix}-provision`, type: "playbook", payload: { playbook: first } },
        {
          taskId: `${prefix}-configure`,
          type: "playbook",
          payload: { playbook: "configure.yml" },
          dependsOn: [`${prefix}-provision`],
        },
        {
          taskId: `${prefix}-deploy`,
          type: "playbook",
          payload: { playbook: "deploy.yml" },
          dependsOn: [`${prefix}-configure`],
        },
      ];
      const ok = await g.api.submitTasks({ workflowId: "rollout-ok", tasks: chain("ok", "provision.yml") });
      assert.deepEqual(ok.taskIds, ["ok-provision", "ok-configure", "ok-deploy"]);
      const waiting = (await g.api.getTaskStatus({ taskId: "ok-deploy" })).task;
      assert.equal(waiting?.status, TaskStatus.WAITING, "the last step waits");
      for (const id of ok.taskIds) await waitForStatus(g.api, id, TaskStatus.COMPLETED, 20_000);
      const lines = readLog(log);
      assert.ok(timeOf(lines, "end", "ok-provision") <= timeOf(lines, "start", "ok-configure"));
      assert.ok(timeOf(lines, "end", "ok-configure") <= timeOf(lines, "start", "ok-deploy"));

      await g.api.submitTasks({ workflowId: "rollout-bad", tasks: chain("bad", "fail.yml") });
      const failed = await waitForStatus(g.api, "bad-provision", TaskStatus.FAILED, 20_000);
      assert.equal(failed.result.exit_code, "1");
      const configure = await waitForStatus(g.api, "bad-configure", TaskStatus.SKIPPED, 5000);
      assert.equal(configure.error, "dependency bad-provision ended FAILED");
      const deploy = await waitForStatus(g.api, "bad-deploy", TaskStatus.SKIPPED, 5000);
      assert.equal(deploy.error, "dependency bad-configure ended SKIPPED");
      const ended = (await storedEvents(g.api, "bad-configure")).find(
        (e) => e.type === "task.status" && e.data.to === "SKIPPED",
      );
      assert.equal(ended?.data.dependency, "bad-provision");
      assert.equal(ended?.data.dependency_status, "FAILED");
      const ran = readLog(log).map(([w, id]) => `${w} ${id}`);
      assert.ok(!ran.some((l) => l.includes("bad-configure") || l.includes("bad-deploy")), ran.join("\n"));
      // Nothing of the failed workflow is left waiting or queued.
      const left = await g.api.listTasks({ workflowId: "rollout-bad", status: "WAITING" });
      assert.equal(left.total, 0);
    } finally {
      await cleanup.run();
    }
  });

  it("runs a diamond's middle steps in parallel on two agents, and its last only after both", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-wf-diamond-");
      const g = await startGateway(cleanup, dir);
      const log = join(dir, "steps.log");
      for (const id of ["agent-1", "agent-2"]) {
        const agent = startAgentProcess({
          endpoint: g.url,
          daemonId: id,
          capacity: 1,
          command: stepCommand(log, 1),
        });
        cleanup.add(() => agent.cleanup());
      }
      await g.api.submitTasks({
        workflowId: "diamond",
        tasks: [
          { taskId: "A", type: "playbook", payload: { playbook: "a.yml" } },
          { taskId: "B", type: "playbook", payload: { playbook: "b.yml" }, dependsOn: ["A"] },
          { taskId: "C", type: "playbook", payload: { playbook: "c.yml" }, dependsOn: ["A"] },
          { taskId: "D", type: "playbook", payload: { playbook: "d.yml" }, dependsOn: ["B", "C"] },
        ],
      });
      const d = await waitForStatus(g.api, "D", TaskStatus.COMPLETED, 30_000);
      assert.deepEqual(d.dependsOn, ["B", "C"]);
      const lines = readLog(log);
      const [bStart, bEnd, cStart, cEnd] = [
        timeOf(lines, "start", "B"),
        timeOf(lines, "end", "B"),
        timeOf(lines, "start", "C"),
        timeOf(lines, "end", "C"),
      ];
      assert.ok(timeOf(lines, "end", "A") <= Math.min(bStart, cStart), "B and C start after A");
      assert.ok(bStart < cEnd && cStart < bEnd, `B and C overlap: B ${bStart}-${bEnd}, C ${cStart}-${cEnd}`);
      assert.ok(timeOf(lines, "start", "D") >= Math.max(bEnd, cEnd), "D starts after both");
      const b = (await g.api.getTaskStatus({ taskId: "B" })).task;
      const c = (await g.api.getTaskStatus({ taskId: "C" })).task;
      assert.notEqual(b?.attempts[0]?.daemonId, c?.attempts[0]?.daemonId, "on the two agents");
    } finally {
      await cleanup.run();
    }
  });

  it("resumes waiting steps after the gateway is SIGKILLed mid-workflow, each step running once", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-wf-crash-");
      const port = await freePort();
      const log = join(dir, "steps.log");
      const g1 = await startGateway(cleanup, dir, { port });
      const agent = startAgentProcess({
        endpoint: g1.url,
        daemonId: "crash-agent",
        capacity: 2,
        command: stepCommand(log, 1.5),
      });
      cleanup.add(() => agent.cleanup());
      await g1.api.submitTasks({
        workflowId: "crashy",
        tasks: [
          { taskId: "s1", type: "playbook", payload: { playbook: "1.yml" } },
          { taskId: "s2", type: "playbook", payload: { playbook: "2.yml" }, dependsOn: ["s1"] },
          { taskId: "s3", type: "playbook", payload: { playbook: "3.yml" }, dependsOn: ["s2"] },
        ],
      });
      await waitForStatus(g1.api, "s1", TaskStatus.RUNNING, 10_000);
      await g1.crash();
      const g2 = await startGateway(cleanup, dir, { port });
      assert.equal((await g2.api.getTaskStatus({ taskId: "s3" })).task?.status, TaskStatus.WAITING);
      for (const id of ["s1", "s2", "s3"]) await waitForStatus(g2.api, id, TaskStatus.COMPLETED, 30_000);
      const starts = readLog(log)
        .filter(([w]) => w === "start")
        .map(([, id]) => id);
      assert.deepEqual(starts, ["s1", "s2", "s3"], "each step ran once, in order");
    } finally {
      await cleanup.run();
    }
  });

  it("retries only the failed hosts: the process gets exactly those as its --limit", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-wf-retry-");
      const g = await startGateway(cleanup, dir);
      const command = fakeCoreCommand(
        ["--daemon-grpc", "{endpoint}", "--task-id", "{task_id}", "--limit", "{limit}"],
        ["--upstream", "--fail-host", "web2", "--exit-code", "2"],
      );
      const agent = startAgentProcess({ endpoint: g.url, daemonId: "retry-agent", capacity: 1, command });
      cleanup.add(() => agent.cleanup());
      await g.api.submitTask({ taskId: "site", type: "playbook", payload: { playbook: "site.yml" } });
      const first = await waitForStatus(g.api, "site", TaskStatus.FAILED, 20_000);
      assert.deepEqual(
        first.hosts.map((h) => `${h.host} failed=${h.failed}`),
        ["web1 failed=0", "web2 failed=1"],
      );
      const { task } = await g.api.retryTask({
        taskId: "site",
        failedHostsOnly: true,
        newTaskId: "site-retry",
      });
      assert.equal(task?.retryOf, "site");
      assert.deepEqual(task?.limitHosts, ["web2"]);
      const again = await waitForStatus(g.api, "site-retry", TaskStatus.FAILED, 20_000);
      assert.deepEqual(
        again.hosts.map((h) => h.host),
        ["web2"],
        "only web2 ran",
      );
      const { lines } = outputLines(await storedEvents(g.api, "site-retry"));
      assert.ok(lines.includes("limit: web2"), `the process was limited to web2:\n${lines.join("\n")}`);
      const original = await storedEvents(g.api, "site");
      const retried = original.find((e) => e.type === "task.retried");
      assert.equal(retried?.data.retry_id, "site-retry");
      assert.equal(retried?.data.limit, "web2");
    } finally {
      await cleanup.run();
    }
  });
});
