/**
 * Crash safety: the gateway runs as a real process on a data directory, takes tasks and progress
 * from concurrent clients, and is killed with SIGKILL while writes are in flight. Restarted on the
 * same directory, it must still have everything it acknowledged: every task whose SubmitTask
 * succeeded, every event whose sequence a StreamProgress acknowledgement carried, in a gap-free log
 * that carries on at the next sequence.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { type ProgressUpdate, ProgressUpdateSchema, TaskStatus } from "../../gen/spage/core/common_pb.js";
import {
  describeEvents,
  type GatewayClients,
  gatewayClients,
  watchUntil,
  withTimeout,
} from "./helpers/event-watch.js";
import { type GatewayProcess, startGatewayProcess } from "./helpers/gateway-process.js";

/** Acknowledged submits and progress acks to collect before the kill. */
const ackedTasksBeforeKill = 150;
const ackedProgressBeforeKill = 60;
/** Concurrent SubmitTask loops. */
const submitters = 8;

/** A push-driven async iterable: the request side of a bidi stream. */
class RequestQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  push(item: T): void {
    if (this.closed) return;
    this.items.push(item);
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const next = this.items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((r) => {
        this.wake = r;
      });
      this.wake = undefined;
    }
  }
}

/** Starts the gateway on `dataDir`; resolves with the process, its URL and the server's own pid. */
async function startGateway(dataDir: string): Promise<{ gw: GatewayProcess; url: string; pid: number }> {
  const gw = startGatewayProcess(["--port", "0", "--data-dir", dataDir, "--log-level", "info"], {
    SPAGE_HOST: "127.0.0.1",
  });
  const port = await gw.port;
  // The pid is taken from the gateway's own log line, so the kill hits the process that serves.
  const serving = await gw.waitForLog((l) => l.port === port && typeof l.pid === "number");
  return { gw, url: `http://127.0.0.1:${port}`, pid: Number(serving.pid) };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("crash safety", () => {
  it("keeps every acknowledged task and event across a SIGKILL during writes", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "spage-crash-"));
    const pids: number[] = [];
    const processes: GatewayProcess[] = [];
    const openClients: GatewayClients[] = [];
    try {
      // ---- First life: write until enough is acknowledged, then SIGKILL mid-flight. ----
      const first = await startGateway(dataDir);
      pids.push(first.pid);
      processes.push(first.gw);
      const c1 = gatewayClients(first.url);
      openClients.push(c1);

      const attempted = new Set<string>();
      const ackedTasks = new Set<string>();
      /** Progress sent per task, and which of those got an acknowledgement. */
      const progressSent = new Set<string>();
      const ackedProgress: { taskId: string; sequence: bigint }[] = [];
      let inFlightSubmits = 0;
      let killed = false;
      let onKill: () => void = () => {};
      const killNow = new Promise<void>((r) => {
        onKill = r;
      });
      const maybeKill = () => {
        if (killed) return;
        if (ackedTasks.size >= ackedTasksBeforeKill && ackedProgress.length >= ackedProgressBeforeKill) {
          killed = true;
          onKill();
        }
      };

      // One StreamProgress stream; acks come back in the order the updates were sent.
      const updates = new RequestQueue<ProgressUpdate>();
      const sentUpdates: string[] = [];
      const progressAbort = new AbortController();
      const progressDone = (async () => {
        try {
          let i = 0;
          for await (const ack of c1.exec.streamProgress(updates, {
            signal: progressAbort.signal,
            timeoutMs: 60_000,
          })) {
            const taskId = sentUpdates[i++];
            assert.equal(ack.metadata.ack, "true", `progress for ${taskId} acknowledged: ${ack.message}`);
            assert.equal(ack.taskId, taskId, "acks come back in order");
            ackedProgress.push({ taskId: ack.taskId, sequence: BigInt(ack.metadata.sequence ?? "0") });
            maybeKill();
          }
        } catch (err) {
          if (!killed) throw err;
        }
      })();
      const sendProgress = (taskId: string) => {
        progressSent.add(taskId);
        sentUpdates.push(taskId);
        updates.push(
          create(ProgressUpdateSchema, {
            taskId,
            progress: 0,
            message: `Executing task: ping on ${taskId}`,
            metadata: { task: "ping", host: "web1", level: "0", status: "running" },
          }),
        );
      };

      const submitLoop = async (worker: number) => {
        for (let i = 0; ; i++) {
          const taskId = `crash-${worker}-${i}`;
          attempted.add(taskId);
          inFlightSubmits++;
          try {
            const res = await c1.api.submitTask(
              { taskId, type: "playbook", payload: { playbook: "site.yml", n: String(i) } },
              { timeoutMs: 10_000 },
            );
            assert.equal(res.success, true);
            assert.equal(res.taskId, taskId);
            ackedTasks.add(taskId);
          } catch (err) {
            if (killed) return;
            throw err;
          } finally {
            inFlightSubmits--;
          }
          // Every other acknowledged task also gets a progress update (which makes it RUNNING).
          if (i % 2 === 0) sendProgress(taskId);
          maybeKill();
        }
      };
      const loops = Array.from({ length: submitters }, (_, w) => submitLoop(w));
      // A failing loop must fail the test now rather than leave it waiting for the kill condition.
      const endedEarly = (what: string) => () => {
        if (!killed) assert.fail(`${what} ended before the kill`);
      };
      await Promise.race([
        killNow,
        ...loops.map((l) => l.then(endedEarly("a submit loop"))),
        progressDone.then(endedEarly("the progress stream")),
      ]);

      const inFlightAtKill = inFlightSubmits;
      process.kill(first.pid, "SIGKILL");
      assert.equal(await withTimeout(first.gw.exited, 10_000, "gateway exit"), 137, "killed by SIGKILL");
      await withTimeout(Promise.all(loops), 10_000, "submit loops end");
      updates.close();
      await withTimeout(progressDone, 10_000, "progress stream ends");
      progressAbort.abort();
      c1.close();
      assert.ok(inFlightAtKill > 0, "the kill hit SubmitTask calls in flight");

      // ---- Second life: same data directory. ----
      const second = await startGateway(dataDir);
      pids.push(second.pid);
      processes.push(second.gw);
      const c2 = gatewayClients(second.url);
      openClients.push(c2);

      const listing = await c2.api.listTasks({ limit: 1 });
      const lastSequence = listing.sequence;
      assert.ok(
        listing.total >= ackedTasks.size,
        `stored tasks (${listing.total}) >= acknowledged (${ackedTasks.size})`,
      );
      assert.ok(listing.total <= attempted.size, "no task that was never submitted");

      const ackedProgressTasks = new Set(ackedProgress.map((a) => a.taskId));
      for (const taskId of ackedTasks) {
        const { task } = await c2.api.getTaskStatus({ taskId });
        assert.ok(task, `acknowledged task ${taskId} survived`);
        assert.equal(task.type, "playbook");
        assert.equal(task.payload.playbook, "site.yml");
        if (ackedProgressTasks.has(taskId)) {
          assert.equal(task.status, TaskStatus.RUNNING, `${taskId} had acknowledged progress`);
          assert.ok(task.startedAt, `${taskId} keeps its start time`);
        } else if (progressSent.has(taskId)) {
          assert.ok([TaskStatus.PENDING, TaskStatus.RUNNING].includes(task.status), `${taskId} state`);
        } else {
          assert.equal(task.status, TaskStatus.PENDING, `${taskId} never got progress`);
        }
      }

      // The whole log: exactly sequences 1..N, in order.
      const log = await watchUntil(
        c2.api,
        { afterSequence: 0n },
        (e) => (e[e.length - 1]?.sequence ?? 0n) >= lastSequence,
        20_000,
      );
      assert.equal(BigInt(log.length), lastSequence, "one event per sequence");
      log.forEach((ev, i) => {
        assert.equal(
          ev.sequence,
          BigInt(i + 1),
          `gap-free at position ${i}:\n${describeEvents(log.slice(Math.max(0, i - 2), i + 2))}`,
        );
      });
      for (const { taskId, sequence } of ackedProgress) {
        const ev = log[Number(sequence) - 1];
        assert.ok(ev, `acknowledged event ${sequence} is readable`);
        assert.equal(ev.type, "task.progress", `event ${sequence} type`);
        assert.equal(ev.taskId, taskId, `event ${sequence} task`);
      }
      const submitted = new Set(log.filter((e) => e.type === "task.submitted").map((e) => e.taskId));
      for (const taskId of ackedTasks) assert.ok(submitted.has(taskId), `task.submitted of ${taskId}`);
      assert.equal(submitted.size, listing.total, "one task.submitted per stored task");

      // New events carry on at N+1.
      const afterRestart = "crash-after-restart";
      const res = await c2.api.submitTask({ taskId: afterRestart, type: "playbook" });
      assert.equal(res.success, true);
      const next = await watchUntil(
        c2.api,
        { taskId: afterRestart, afterSequence: lastSequence },
        (e) => e.length >= 1,
      );
      assert.equal(next[0]?.type, "task.submitted");
      assert.equal(next[0]?.sequence, lastSequence + 1n, "the log continues where it stopped");
      c2.close();

      second.gw.child.kill("SIGTERM");
      assert.equal(await withTimeout(second.gw.exited, 10_000, "graceful exit"), 0);
    } catch (err) {
      if (err instanceof ConnectError) throw new Error(`RPC failed: ${err.message}`, { cause: err });
      throw err;
    } finally {
      for (const c of openClients) c.close();
      for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
      for (const gw of processes) if (gw.child.exitCode === null) gw.child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
