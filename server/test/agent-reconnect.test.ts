/**
 * The reference agent across broken connections, every part a real process:
 *
 * - the network between agent and gateway drops (a TCP proxy cuts every connection and refuses new
 *   ones for a while) while a task runs: the agent reconnects within the grace window, the task is
 *   re-attached and finishes COMPLETED in one attempt, and its output arrives exactly once, in order,
 *   the lines printed while it was away after the reconnect;
 * - the gateway is killed with SIGKILL and restarted on the same data directory and port while a
 *   task runs: the agent reconnects, the task finishes COMPLETED, and every output line arrives
 *   exactly once, those printed while the gateway was down after the restart.
 *
 * The task commands print in stages gated by files the test creates, so the test knows which lines
 * were printed while the agent was cut off. A last test prints
 * without pause across the reconnect.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { Client } from "@connectrpc/connect";
import type { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { type Event, TaskStatus } from "../../gen/spage/core/common_pb.js";
import { shellQuote } from "../src/agent/command-template.js";
import {
  Cleanup,
  freePort,
  numbered,
  outputLines,
  shPrintRange,
  shWaitFile,
  startGateway,
  statusPath,
  storedEvents,
  tempDir,
  waitForFile,
  waitForStatus,
} from "./helpers/agent-harness.js";
import { startAgentProcess } from "./helpers/agent-process.js";
import { describeEvents, watchUntil } from "./helpers/event-watch.js";
import { startTcpProxy } from "./helpers/tcp-proxy.js";

/** Gate files of a staged command in `dir`. */
function gates(dir: string) {
  return { away: join(dir, "gate-away"), printed: join(dir, "printed-away"), back: join(dir, "gate-back") };
}

/**
 * Prints <prefix>1-5, waits for the "away" gate, prints 6-15 and says so (file "printed"), waits for
 * the "back" gate, prints 16-30.
 */
function stagedCommand(prefix: string, g: ReturnType<typeof gates>): string {
  return [
    shPrintRange(prefix, 1, 5, 0.05),
    shWaitFile(g.away),
    shPrintRange(prefix, 6, 15, 0.02),
    `touch ${shellQuote(g.printed)}`,
    shWaitFile(g.back),
    shPrintRange(prefix, 16, 30, 0.02),
  ].join("; ");
}

/** Waits until the task's stored output includes `line`. */
async function waitForOutputLine(api: Client<typeof SpageAPI>, taskId: string, line: string): Promise<void> {
  await watchUntil(api, { taskId, types: ["task.output"] }, (evs) =>
    evs.some((e) => (e.data.line ?? "").split("\n").includes(line)),
  );
}

/** Asserts that the task's output is exactly `expected`, in chunks numbered 1, 2, 3 ... */
function assertOutputOnce(events: readonly Event[], expected: readonly string[]): void {
  const out = outputLines(events);
  assert.deepEqual(out.lines, expected, describeEvents(events));
  assert.deepEqual(
    out.seqs,
    out.seqs.map((_, i) => i + 1),
    "chunk numbers run 1, 2, 3 ... without gap or repeat",
  );
}

/** The lines of the task.output events stored after sequence `after`. */
function linesAfter(events: readonly Event[], after: bigint): string[] {
  return outputLines(events.filter((e) => e.sequence > after)).lines;
}

describe("agent reconnects", () => {
  it("a dropped connection: the agent comes back within the grace, the task is re-attached, output exactly once", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-agent-net-");
      const gate = gates(dir);
      const g = await startGateway(cleanup, dir);
      const proxy = await startTcpProxy(g.port);
      cleanup.add(() => proxy.close());
      const agent = startAgentProcess({
        endpoint: proxy.url,
        daemonId: "agent-net",
        capacity: 1,
        command: stagedCommand("line-", gate),
      });
      cleanup.add(() => agent.cleanup());
      await g.api.submitTask({ taskId: "n-1", type: "job" });
      await waitForStatus(g.api, "n-1", TaskStatus.RUNNING);
      await waitForOutputLine(g.api, "n-1", "line-5");

      // The network drops: every connection is cut, and reconnects fail until it is back.
      proxy.block();
      proxy.cut();
      await agent.waitForLog((l) => l.msg === "gateway stream ended");
      writeFileSync(gate.away, "");
      await waitForFile(gate.printed);
      // The agent has tried (and failed) to reconnect at least once by now.
      await agent.waitForLog(() => agent.count((l) => l.msg === "gateway stream ended") >= 2);
      proxy.unblock();

      const back = await agent.waitForLog((l) => l.msg === "connected to the gateway" && l.reattached === 1);
      assert.equal(back.cancel, 0);
      writeFileSync(gate.back, "");
      const done = await waitForStatus(g.api, "n-1", TaskStatus.COMPLETED, 10_000);
      assert.equal(done.attempt, 1);
      assert.deepEqual(
        done.attempts.map((a) => a.outcome),
        ["completed"],
      );

      const all = await storedEvents(g.api);
      const events = all.filter((e) => e.taskId === "n-1");
      assert.deepEqual(statusPath(events), ["ASSIGNED", "RUNNING", "COMPLETED"], describeEvents(events));
      assertOutputOnce(events, numbered("line-", 30));
      // The gateway saw the daemon leave and come back while the task ran ...
      const daemonEvents = all.filter((e) => e.data.daemon_id === "agent-net" && e.taskId === "");
      assert.deepEqual(
        daemonEvents.map((e) => e.type),
        ["daemon.connected", "daemon.left", "daemon.connected"],
        describeEvents(daemonEvents),
      );
      // ... and got the lines printed while it was away after it came back.
      const reconnected = daemonEvents[2]?.sequence ?? 0n;
      assert.deepEqual(
        linesAfter(events, reconnected),
        numbered("line-", 30).slice(5),
        describeEvents(events),
      );
    } finally {
      await cleanup.run();
    }
  });

  it("the gateway killed and restarted mid-task: the agent reconnects, the task completes, output exactly once", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-agent-restart-");
      const gate = gates(dir);
      const port = await freePort();
      // A longer lost grace than the other tests: the gateway counts its own downtime (and the
      // agent's reconnect backoff) against the daemon, so 2 s would often mark the task LOST.
      const timings = { "lost-grace-ms": 10_000 };
      const g1 = await startGateway(cleanup, dir, { port, timings });
      const agent = startAgentProcess({
        endpoint: g1.url,
        daemonId: "agent-steady",
        capacity: 1,
        command: stagedCommand("n-", gate),
      });
      cleanup.add(() => agent.cleanup());
      await g1.api.submitTask({ taskId: "g-1", type: "job" });
      await waitForStatus(g1.api, "g-1", TaskStatus.RUNNING);
      await waitForOutputLine(g1.api, "g-1", "n-5");

      await g1.crash();
      writeFileSync(gate.away, "");
      await waitForFile(gate.printed);
      const g2 = await startGateway(cleanup, dir, { port, timings });
      const back = await agent.waitForLog(
        (l) => l.msg === "connected to the gateway" && l.reattached === 1,
        10_000,
      );
      assert.equal(back.cancel, 0);
      writeFileSync(gate.back, "");
      const done = await waitForStatus(g2.api, "g-1", TaskStatus.COMPLETED, 10_000);
      assert.equal(done.attempt, 1);
      assert.deepEqual(
        done.attempts.map((a) => a.outcome),
        ["completed"],
      );

      const all = await storedEvents(g2.api);
      const events = all.filter((e) => e.taskId === "g-1");
      assert.deepEqual(statusPath(events), ["ASSIGNED", "RUNNING", "COMPLETED"], describeEvents(events));
      assertOutputOnce(events, numbered("n-", 30));
      // Lines printed while the gateway was down were stored after the restart.
      const connects = all.filter(
        (e) => e.type === "daemon.connected" && e.data.daemon_id === "agent-steady",
      );
      assert.equal(connects.length, 2, describeEvents(all));
      assert.deepEqual(
        linesAfter(events, connects[1]?.sequence ?? 0n),
        numbered("n-", 30).slice(5),
        describeEvents(events),
      );
    } finally {
      await cleanup.run();
    }
  });

  it("output printed without pause across a reconnect arrives exactly once", async () => {
    const cleanup = new Cleanup();
    try {
      const dir = tempDir(cleanup, "spage-agent-race-");
      const counter = join(dir, "printed");
      const g = await startGateway(cleanup, dir);
      const proxy = await startTcpProxy(g.port);
      cleanup.add(() => proxy.close());
      const agent = startAgentProcess({
        endpoint: proxy.url,
        daemonId: "agent-race",
        capacity: 1,
        command: `i=1; while [ $i -le 60 ]; do echo r-$i; echo $i > ${shellQuote(counter)}; i=$((i+1)); sleep 0.05; done`,
      });
      cleanup.add(() => agent.cleanup());
      await g.api.submitTask({ taskId: "race-1", type: "job" });
      await waitForOutputLine(g.api, "race-1", "r-1");

      proxy.block();
      proxy.cut();
      await agent.waitForLog(() => agent.count((l) => l.msg === "gateway stream ended") >= 2);
      // The agent gets through again, but the gateway's answers (the welcome) are held up for a
      // while, during which the task keeps printing.
      proxy.hold("down");
      proxy.unblock();
      await watchUntil(
        g.api,
        { types: ["daemon.connected"] },
        (evs) => evs.filter((e) => e.data.daemon_id === "agent-race").length >= 2,
      );
      await waitForFile(counter);
      const printed = () => Number(readFileSync(counter, "utf8").trim() || "0");
      const at = printed();
      const deadline = Date.now() + 5000;
      while (printed() < at + 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      proxy.release();

      await agent.waitForLog((l) => l.msg === "connected to the gateway" && l.reattached === 1);
      await waitForStatus(g.api, "race-1", TaskStatus.COMPLETED, 10_000);
      assertOutputOnce(await storedEvents(g.api, "race-1"), numbered("r-", 60));
    } finally {
      await cleanup.run();
    }
  });
});
