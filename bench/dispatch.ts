/**
 * Dispatch figures: tasks assigned per second to 10 daemons that finish each task the moment they
 * get it, and submit-to-start latency (SubmitTask sent -> the daemon holds `task.assigned` and
 * reports it started) with idle daemons waiting. The daemons speak the real daemon channel over
 * native gRPC, like the reference agent, without starting processes, so the gateway is measured.
 */
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI } from "../gen/spage/api/tasks_pb.js";
import { type Event, EventSchema } from "../gen/spage/core/common_pb.js";
import { fail } from "./checks.js";
import type { ServerProcess } from "./gateway.js";
import { bearer } from "./protocols.js";
import { p50p99 } from "./stats.js";

/** What the dispatch phase measured. */
export interface DispatchResult {
  readonly daemons: number;
  readonly capacity: number;
  readonly tasks: number;
  readonly assignedPerSec: number;
  readonly latencySamples: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
}

/** The events a daemon sends on its channel, as a request stream that waits for more. */
export class Inbox implements AsyncIterable<Event> {
  private items: Event[] = [];
  private wake: (() => void) | undefined;
  private done = false;
  push(ev: Event) {
    this.items.push(ev);
    this.wake?.();
  }
  end() {
    this.done = true;
    this.wake?.();
  }
  async *[Symbol.asyncIterator]() {
    for (;;) {
      const ev = this.items.shift();
      if (ev) {
        yield ev;
        continue;
      }
      if (this.done) return;
      await new Promise<void>((r) => {
        this.wake = r;
      });
      this.wake = undefined;
    }
  }
}

/** Runs the dispatch measurements against a running gateway. */
export async function measureDispatch(gw: ServerProcess): Promise<DispatchResult> {
  const daemons = 10;
  const capacity = 4;
  const sessions: Http2SessionManager[] = [];
  const ac = new AbortController();
  const onAssigned = new Map<string, () => void>();
  let assigned = 0;
  const ready: Promise<void>[] = [];
  for (let i = 0; i < daemons; i++) {
    const sm = new Http2SessionManager(gw.baseUrl);
    sessions.push(sm);
    const api = createClient(
      SpageAPI,
      createGrpcTransport({ baseUrl: gw.baseUrl, sessionManager: sm, interceptors: bearer(gw.token) }),
    );
    const out = new Inbox();
    let n = 0;
    const send = (type: string, data: Record<string, string>) =>
      out.push(create(EventSchema, { id: `bench-${i}-${++n}`, type, data }));
    send("daemon.hello", { daemon_id: `bench-daemon-${i}`, capacity: String(capacity), hostname: "bench" });
    ready.push(
      new Promise<void>((resolve, reject) => {
        (async () => {
          let welcomed = false;
          for await (const ev of api.streamEvents(out, { signal: ac.signal })) {
            if (ev.type === "daemon.welcome" && !welcomed) {
              welcomed = true;
              resolve();
              setInterval(() => send("daemon.heartbeat", {}), Number(ev.data.heartbeat_ms ?? 5000)).unref();
            } else if (ev.type === "task.assigned") {
              const id = ev.data.task_id ?? "";
              assigned++;
              send("task.started", { task_id: id });
              onAssigned.get(id)?.();
              send("task.completed", { task_id: id, exit_code: "0" });
            }
          }
        })().catch((err: unknown) => {
          if (!ac.signal.aborted) reject(err);
        });
      }),
    );
  }
  const client = createClient(
    SpageAPI,
    createGrpcTransport({
      baseUrl: gw.baseUrl,
      sessionManager: new Http2SessionManager(gw.baseUrl),
      interceptors: bearer(gw.token),
    }),
  );
  try {
    await Promise.all(ready);

    // Throughput: 2,000 tasks submitted 64 at a time; the clock stops at the last assignment.
    const tasks = 2000;
    const allAssigned = new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (assigned >= tasks) {
          clearInterval(timer);
          resolve();
        }
      }, 2);
    });
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < tasks) {
          next++;
          await client.submitTask({ type: "bench-dispatch" });
        }
      }),
    );
    await Promise.race([allAssigned, new Promise((r) => setTimeout(r, 60_000))]);
    const seconds = (performance.now() - t0) / 1000;
    if (assigned < tasks) fail(`dispatch: only ${assigned} of ${tasks} tasks were assigned within 60 s`);
    const assignedPerSec = assigned / seconds;

    // Latency: one task at a time, with every daemon idle and waiting.
    await new Promise((r) => setTimeout(r, 500));
    const samples: number[] = [];
    for (let i = 0; i < 300; i++) {
      const id = `bench-latency-${process.pid}-${i}`;
      const started = new Promise<void>((resolve) => onAssigned.set(id, resolve));
      const s = performance.now();
      await client.submitTask({ taskId: id, type: "bench-latency" });
      await Promise.race([started, new Promise((r) => setTimeout(r, 5000))]);
      samples.push(performance.now() - s);
      onAssigned.delete(id);
      await new Promise((r) => setTimeout(r, 5));
    }
    const { p50, p99 } = p50p99(samples);
    if (p99 >= 20) fail(`dispatch: submit-to-start p99 ${p99.toFixed(2)} ms is over the 20 ms target`);
    const status = await client.listTasks({ status: "COMPLETED", type: "bench-dispatch", limit: 1 });
    if (status.total !== tasks) fail(`dispatch: ${status.total} of ${tasks} tasks COMPLETED`);
    return {
      daemons,
      capacity,
      tasks,
      assignedPerSec,
      latencySamples: samples.length,
      latencyP50Ms: p50,
      latencyP99Ms: p99,
    };
  } finally {
    ac.abort();
    for (const sm of sessions) sm.abort();
  }
}

/** The dispatch section of the results, as Markdown. */
export function renderDispatch(d: DispatchResult): string[] {
  return [
    "### Dispatch to daemons",
    "",
    "| Daemons (capacity each) | Tasks | Assigned/s | Submit-to-start p50 ms | p99 ms (target < 20) |",
    "| --- | ---: | ---: | ---: | ---: |",
    `| ${d.daemons} (${d.capacity}) | ${d.tasks} | ${Math.round(d.assignedPerSec)} | ${d.latencyP50Ms.toFixed(2)} | ${d.latencyP99Ms.toFixed(2)} |`,
    "",
  ];
}
