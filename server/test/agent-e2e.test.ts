/**
 * The reference agent end to end, every part a real process: a gateway child, `spage-gateway agent`
 * children running real commands, and the `spage-gateway` command line.
 *
 * - Two agents drain a queue of mixed priorities: every task runs exactly once, in priority order.
 * - A playbook submitted with the CLI runs through an agent whose command is a fake Spage core
 *   (fixtures/fake-spage-core.ts) that reports per-host progress over SpageExecution.StreamProgress;
 *   `spage-gateway watch --until-end` prints the whole life of the task and exits 0, and
 *   `spage-gateway get --json` shows the per-host summary.
 * - Cores that behave exactly as upstream (no run-end marker): the run ends by the process's exit
 *   code, not by what the core's stream reported.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { TaskPriority, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { shellQuote } from "../src/agent/command-template.js";
import {
  Cleanup,
  outputLines,
  runCli,
  spawnCli,
  startGateway,
  storedEvents,
  tempDir,
  waitForStatus,
  within,
} from "./helpers/agent-harness.js";
import { startAgentProcess } from "./helpers/agent-process.js";
import { fakeCoreCommand as coreCommand, taskEraPlaceholders } from "./helpers/core-process.js";
import { describeEvents } from "./helpers/event-watch.js";

/** The agent's --command running the fake Spage core for a task. */
function fakeCoreCommand(extra: readonly string[] = []): string {
  return coreCommand(taskEraPlaceholders, extra);
}

describe("agent end to end", () => {
  it("two agents run a queue of mixed priorities: each task once, higher priorities first", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-agent-e2e-");
      const g = await startGateway(cleanup, dir);
      const ran = join(dir, "ran.txt");
      // Submitted before any agent connects, in an order unlike their priorities.
      const tasks: [string, TaskPriority][] = [
        ["p-low", TaskPriority.LOW],
        ["p-normal-1", TaskPriority.NORMAL],
        ["p-high", TaskPriority.HIGH],
        ["p-normal-2", TaskPriority.NORMAL],
        ["p-critical", TaskPriority.CRITICAL],
      ];
      for (const [taskId, priority] of tasks) await g.api.submitTask({ taskId, type: "job", priority });
      const command = `echo {task_id} >> ${shellQuote(ran)}; sleep 0.5`;
      for (const daemonId of ["agent-a", "agent-b"]) {
        const agent = startAgentProcess({ endpoint: g.url, daemonId, capacity: 1, command });
        cleanup.add(() => agent.cleanup());
      }

      const ended = [];
      for (const [taskId] of tasks)
        ended.push(await waitForStatus(g.api, taskId, TaskStatus.COMPLETED, 20_000));

      // Exactly once: each id appended once, one attempt each.
      const lines = readFileSync(ran, "utf8").split("\n").filter(Boolean);
      assert.deepEqual([...lines].sort(), tasks.map(([id]) => id).sort(), `runs: ${lines.join(", ")}`);
      for (const t of ended) {
        assert.equal(t.attempt, 1, `${t.id} attempt`);
        assert.deepEqual(
          t.attempts.map((a) => a.outcome),
          ["completed"],
          `${t.id} attempts`,
        );
      }
      assert.equal(new Set(ended.map((t) => t.attempts[0]?.daemonId)).size, 2, "both agents ran tasks");

      const events = await storedEvents(g.api);
      const seqOf = (taskId: string, to: string) => {
        const found = events.filter(
          (e) => e.taskId === taskId && e.type === "task.status" && e.data.to === to,
        );
        assert.equal(found.length, 1, `${taskId} went ${to} exactly once:\n${describeEvents(found)}`);
        return found[0]?.sequence ?? 0n;
      };
      const prio = new Map(tasks);
      // The gateway hands them out strictly by priority, first in first out within one.
      const assignedOrder = [...tasks]
        .map(([id]) => ({ id, seq: seqOf(id, "ASSIGNED") }))
        .sort((a, b) => (a.seq < b.seq ? -1 : 1))
        .map((x) => x.id);
      assert.deepEqual(assignedOrder, ["p-critical", "p-high", "p-normal-1", "p-normal-2", "p-low"]);
      // And no task starts while one of higher priority still waits in the queue.
      for (const [id, p] of tasks) {
        const running = seqOf(id, "RUNNING");
        for (const [other, q] of tasks) {
          if (q > p) {
            assert.ok(
              seqOf(other, "ASSIGNED") < running,
              `${id} (${TaskPriority[p]}) started while ${other} (${TaskPriority[q]}) was still pending`,
            );
          }
        }
      }
      const runningOrder = [...tasks]
        .map(([id]) => ({ id, seq: seqOf(id, "RUNNING") }))
        .sort((a, b) => (a.seq < b.seq ? -1 : 1));
      // Tasks started one after another by priority (ties only between tasks assigned together).
      for (let i = 1; i < runningOrder.length; i++) {
        const before = runningOrder[i - 1];
        const after = runningOrder[i];
        if (!before || !after) continue;
        assert.ok(
          (prio.get(before.id) ?? 0) >= (prio.get(after.id) ?? 0) ||
            seqOf(after.id, "ASSIGNED") < seqOf(before.id, "RUNNING"),
          `start order: ${runningOrder.map((r) => r.id).join(", ")}`,
        );
      }
    } finally {
      await cleanup.run();
    }
  });

  it("a playbook submitted with the CLI runs through a fake Spage core; watch prints its whole life", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-agent-e2e-");
      const g = await startGateway(cleanup, dir);
      const submit = await runCli(cleanup, [
        "submit",
        "--endpoint",
        g.url,
        "--playbook",
        "site.yml",
        "--var",
        "env=test",
      ]);
      assert.equal(submit.code, 0, submit.stderr);
      const taskId = submit.stdout.trim();
      assert.match(taskId, /^[0-9a-f-]{36}$/);

      const watch = spawnCli(cleanup, ["watch", "--endpoint", g.url, "--task", taskId, "--until-end"]);
      // The watch follows the task from its start (it replays the log), so it is running before the agent.
      await watch.waitForLine((l) => l.includes(" task.submitted "));
      const command = fakeCoreCommand();
      const agent = startAgentProcess({ endpoint: g.url, daemonId: "agent-core", capacity: 1, command });
      cleanup.add(() => agent.cleanup());

      const res = await within(
        watch.done,
        20_000,
        () => `watch --until-end; stdout:\n${watch.stdout()}\nagent:\n${agent.stderr()}`,
      );
      assert.equal(res.code, 0, `watch exit code; stdout:\n${res.stdout}\nstderr:\n${res.stderr}`);
      const printed = res.stdout.split("\n").filter(Boolean);
      const kinds = printed.map((l) => {
        const m = /^#(\d+) \S+ (?:([|!]) (.*)|(\S+)(?: (.*))?)$/.exec(l);
        assert.ok(m, `unexpected watch line: ${l}`);
        if (m[2]) return { seq: Number(m[1]), kind: "output", text: m[3] ?? "" };
        return { seq: Number(m[1]), kind: m[4] ?? "", text: m[5] ?? "" };
      });
      const statuses = kinds.filter((k) => k.kind === "task.status").map((k) => /to=(\S+)/.exec(k.text)?.[1]);
      assert.deepEqual(statuses, ["ASSIGNED", "RUNNING", "COMPLETED"], res.stdout);
      const count = (kind: string) => kinds.filter((k) => k.kind === kind).length;
      assert.equal(count("task.submitted"), 1, res.stdout);
      assert.equal(count("task.assigned"), 1, res.stdout);
      assert.equal(count("task.registered"), 2, res.stdout);
      // One task.progress per update of the plan (11) plus the run-end marker.
      assert.equal(count("task.progress"), 12, res.stdout);
      const first = (kind: string, text = "") =>
        kinds.findIndex((k) => k.kind === kind && k.text.includes(text));
      assert.equal(first("task.submitted"), 0, "task.submitted comes first");
      assert.ok(first("task.status", "to=ASSIGNED") < first("task.assigned"), res.stdout);
      assert.ok(first("task.assigned") < first("task.status", "to=RUNNING"), res.stdout);
      assert.ok(first("task.status", "to=RUNNING") < first("task.registered"), res.stdout);
      assert.equal(first("task.status", "to=COMPLETED"), kinds.length - 1, "COMPLETED comes last");
      assert.match(
        kinds.filter((k) => k.kind === "task.progress").at(-1)?.text ?? "",
        /run_status=completed/,
        "the run ends with run_status completed",
      );

      // Every line the core printed, once and in order, printed before COMPLETED.
      const expectedOutput = [
        "PLAY [site.yml] ****",
        "TASK [Gathering Facts] ****",
        "ok: [web1]",
        "ok: [web2]",
        "TASK [install nginx] ****",
        "ok: [web1]",
        "skipping: [web2]",
        "TASK [ping] ****",
        "ok: [web1]",
        "ok: [web2]",
        "PLAY RECAP ****",
        "web1 : ok=3 failed=0 skipped=0",
        "web2 : ok=2 failed=0 skipped=1",
      ];
      assert.deepEqual(
        kinds.filter((k) => k.kind === "output").map((k) => k.text),
        expectedOutput,
        res.stdout,
      );
      const seqs = [...new Set(kinds.map((k) => k.seq))];
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
        "sequences only grow",
      );

      // Everything stored about the task was printed, each event once.
      const stored = (await storedEvents(g.api, taskId)).filter(
        (e) => e.sequence <= BigInt(seqs.at(-1) ?? 0),
      );
      assert.deepEqual(
        stored.map((e) => Number(e.sequence)),
        seqs,
        describeEvents(stored),
      );
      const out = outputLines(stored);
      assert.deepEqual(
        out.seqs,
        out.seqs.map((_, i) => i + 1),
        "output chunks numbered without gap",
      );

      const get = await runCli(cleanup, ["get", taskId, "--endpoint", g.url, "--json"]);
      assert.equal(get.code, 0, get.stderr);
      const shown = JSON.parse(get.stdout) as {
        task: {
          status: string;
          payload: Record<string, string>;
          hosts: { host: string; ok?: number; skipped?: number; failed?: number; running?: number }[];
          result: Record<string, string>;
          attempt: number;
        };
      };
      assert.equal(shown.task.status, "TASK_STATUS_COMPLETED");
      assert.equal(shown.task.attempt, 1);
      assert.deepEqual(shown.task.hosts, [
        { host: "web1", ok: 3 },
        { host: "web2", ok: 2, skipped: 1 },
      ]);
      assert.equal(shown.task.payload.playbook, "site.yml");
      assert.deepEqual(JSON.parse(shown.task.payload.variables ?? "{}"), { env: "test" });
      assert.equal(shown.task.result.exit_code, "0");

      // The agent saw its process end cleanly and was not told to stop it.
      const ended = await agent.waitForLog((l) => l.msg === "task ended" && l.task === taskId);
      assert.equal(ended.exitCode, 0, agent.stderr());
      assert.equal(ended.stopped, false, agent.stderr());
      assert.equal(
        agent.count((l) => l.level !== "info"),
        0,
        `agent warnings:\n${agent.stderr()}`,
      );
    } finally {
      await cleanup.run();
    }
  });

  it("a run the agent started ends by the process's exit code, whatever its core's stream reported", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-agent-e2e-");
      const g = await startGateway(cleanup, dir);
      // Cores exactly as upstream (no run-end marker, the stream cancelled on exit): one whose hosts
      // all succeed but whose process exits 3, one whose host fails but whose process exits 0.
      const agents = [
        { daemonId: "agent-exit3", labels: "mode=exit3", extra: ["--upstream", "--exit-code", "3"] },
        { daemonId: "agent-failhost", labels: "mode=failhost", extra: ["--upstream", "--fail-host", "web2"] },
      ];
      for (const a of agents) {
        const agent = startAgentProcess({
          endpoint: g.url,
          daemonId: a.daemonId,
          capacity: 1,
          labels: a.labels,
          command: fakeCoreCommand(a.extra),
        });
        cleanup.add(() => agent.cleanup());
      }
      for (const [taskId, mode] of [
        ["exit-3", "exit3"],
        ["host-failed-exit-0", "failhost"],
      ]) {
        await g.api.submitTask({
          taskId,
          type: "playbook",
          payload: { playbook: "site.yml", target_labels: `mode=${mode}` },
        });
      }

      const failed = await waitForStatus(g.api, "exit-3", TaskStatus.FAILED, 20_000);
      assert.equal(failed.result.exit_code, "3");
      assert.deepEqual(
        failed.hosts.map((h) => `${h.host} ${h.ok}/${h.failed}/${h.skipped}/${h.running}`),
        ["web1 3/0/0/0", "web2 2/0/1/0"],
        "every host succeeded; the exit code decides",
      );
      const completed = await waitForStatus(g.api, "host-failed-exit-0", TaskStatus.COMPLETED, 20_000);
      assert.equal(completed.result.exit_code, "0");
      assert.equal(completed.hosts.find((h) => h.host === "web2")?.failed, 1);
      for (const taskId of ["exit-3", "host-failed-exit-0"]) {
        const path = (await storedEvents(g.api, taskId))
          .filter((e) => e.type === "task.status")
          .map((e) => e.data.to);
        assert.equal(path.length, 3, `${taskId}: ${path.join(", ")}`);
        assert.deepEqual(path.slice(0, 2), ["ASSIGNED", "RUNNING"], taskId);
      }
    } finally {
      await cleanup.run();
    }
  });

  it("output a core prints after it marked the end of the run still arrives", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-agent-e2e-");
      const g = await startGateway(cleanup, dir);
      await g.api.submitTask({ taskId: "late-words", type: "playbook", payload: { playbook: "site.yml" } });
      const agent = startAgentProcess({
        endpoint: g.url,
        daemonId: "agent-late",
        capacity: 1,
        command: fakeCoreCommand(["--trailer", "last words"]),
      });
      cleanup.add(() => agent.cleanup());
      await waitForStatus(g.api, "late-words", TaskStatus.COMPLETED, 15_000);
      const ended = await agent.waitForLog((l) => l.msg === "task ended" && l.task === "late-words");
      assert.equal(ended.exitCode, 0, agent.stderr());
      // Wait for the last line to be stored, or for the gateway to refuse it.
      const deadline = Date.now() + 5000;
      let lines: string[] = [];
      for (;;) {
        lines = outputLines(await storedEvents(g.api, "late-words")).lines;
        const refused = agent.count((l) => l.msg === "the gateway refused an event") > 0;
        if (lines.includes("last words") || refused || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(lines.at(-1), "last words", `output: ${lines.join(" / ")}\nagent:\n${agent.stderr()}`);
    } finally {
      await cleanup.run();
    }
  });
});
