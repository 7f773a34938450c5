/**
 * Workflow figures: a 1,000-task graph (a root, 499 tasks fanning out from it and a chain of 500
 * hanging off it) submitted in one SubmitTasks call, and the delay from a dependency finishing to
 * its dependent starting. One daemon on the real daemon channel (native gRPC, capacity 1000, so no task waits for a free slot) takes
 * each task and finishes it at once; along the chain each edge is measured from the daemon sending
 * task.completed of task N to it holding task.assigned of task N+1 (N+1's only dependency is N).
 * Runnable alone: `npx tsx bench/workflows.ts`.
 */

import { pathToFileURL } from "node:url";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI, type SubmitTasksRequestSchema } from "../gen/spage/api/tasks_pb.js";
import { EventSchema } from "../gen/spage/core/common_pb.js";
import { fail, failuresSoFar } from "./checks.js";
import { Inbox } from "./dispatch.js";
import { type ServerProcess, stopAll, withGateway } from "./gateway.js";
import { bearer } from "./protocols.js";
import { p50p99 } from "./stats.js";

/** What the workflow phase measured. */
export interface WorkflowResult {
  readonly tasks: number;
  readonly submitP50Ms: number;
  readonly submitMaxMs: number;
  readonly submitRuns: number;
  readonly chainEdges: number;
  readonly edgeP50Ms: number;
  readonly edgeP99Ms: number;
  /** From the root's completion to the last of its 499 dependents started. */
  readonly fanOutAllStartedMs: number;
  readonly wholeGraphMs: number;
}

const fan = 499;
const chain = 500;

/** The graph: `r` the root, `f<i>` after it, `c0` after it and `c<i>` after `c<i-1>`. */
function graph(prefix: string, labels: string): MessageInitShape<typeof SubmitTasksRequestSchema> {
  const payload = { target_labels: labels };
  const tasks = [{ taskId: `${prefix}r`, type: "bench-dag", payload }];
  for (let i = 0; i < fan; i++)
    tasks.push({ taskId: `${prefix}f${i}`, type: "bench-dag", payload, dependsOn: [`${prefix}r`] } as never);
  for (let i = 0; i < chain; i++)
    tasks.push({
      taskId: `${prefix}c${i}`,
      type: "bench-dag",
      payload,
      dependsOn: [i === 0 ? `${prefix}r` : `${prefix}c${i - 1}`],
    } as never);
  return { workflowId: `${prefix}wf`, tasks };
}

/** Runs the workflow measurements against a running gateway. */
export async function measureWorkflows(gw: ServerProcess): Promise<WorkflowResult> {
  const sm = new Http2SessionManager(gw.baseUrl);
  const api = createClient(
    SpageAPI,
    createGrpcTransport({ baseUrl: gw.baseUrl, sessionManager: sm, interceptors: bearer(gw.token) }),
  );
  const ac = new AbortController();
  const run = `${process.pid}-`;
  try {
    // Submit time: graphs for labels no daemon has, so they stay put.
    const submitMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const res = await api.submitTasks(graph(`s${i}-${run}`, "pool=nobody"));
      submitMs.push(performance.now() - t0);
      if (res.taskIds.length !== 1 + fan + chain)
        fail(`workflows: SubmitTasks stored ${res.taskIds.length} tasks`);
    }

    // The run: one daemon that finishes everything it gets at once.
    const out = new Inbox();
    let n = 0;
    const send = (type: string, data: Record<string, string>) =>
      out.push(create(EventSchema, { id: `dag-${++n}`, type, data }));
    const assignedAt = new Map<string, number>();
    const completedAt = new Map<string, number>();
    const total = 1 + fan + chain;
    let done!: () => void;
    const all = new Promise<void>((r) => {
      done = r;
    });
    let welcomed!: () => void;
    const welcome = new Promise<void>((r) => {
      welcomed = r;
    });
    send("daemon.hello", { daemon_id: "bench-dag", capacity: "1000", hostname: "bench", labels: "pool=dag" });
    const reading = (async () => {
      for await (const ev of api.streamEvents(out, { signal: ac.signal })) {
        if (ev.type === "daemon.welcome") {
          welcomed();
          setInterval(() => send("daemon.heartbeat", {}), Number(ev.data.heartbeat_ms ?? 5000)).unref();
        } else if (ev.type === "task.assigned") {
          const id = ev.data.task_id ?? "";
          assignedAt.set(id, performance.now());
          send("task.started", { task_id: id });
          completedAt.set(id, performance.now());
          send("task.completed", { task_id: id, exit_code: "0" });
          if (completedAt.size === total) done();
        }
      }
    })().catch((err: unknown) => {
      if (!ac.signal.aborted) throw err;
    });
    await welcome;
    const p = `run-${run}`;
    const t0 = performance.now();
    await api.submitTasks(graph(p, "pool=dag"));
    await Promise.race([all, new Promise((r) => setTimeout(r, 120_000))]);
    const wholeGraphMs = performance.now() - t0;
    if (completedAt.size < total)
      fail(`workflows: only ${completedAt.size} of ${total} tasks ran within 120 s`);
    const edges: number[] = [];
    for (let i = 1; i < chain; i++) {
      const a = assignedAt.get(`${p}c${i}`);
      const c = completedAt.get(`${p}c${i - 1}`);
      if (a !== undefined && c !== undefined) edges.push(a - c);
    }
    const rootDone = completedAt.get(`${p}r`) ?? 0;
    const lastFan = Math.max(...Array.from({ length: fan }, (_, i) => assignedAt.get(`${p}f${i}`) ?? 0));
    const edge = p50p99(edges);
    if (edge.p99 >= 20)
      fail(`workflows: dependency-to-dependent p99 ${edge.p99.toFixed(2)} ms is over the 20 ms target`);
    // The last completion sent may still be on its way to the store.
    let completed = 0;
    for (let i = 0; i < 100 && completed < total; i++) {
      completed = (await api.listTasks({ workflowId: `${p}wf`, status: "COMPLETED", limit: 1 })).total;
      if (completed < total) await new Promise((r) => setTimeout(r, 20));
    }
    if (completed !== total) fail(`workflows: ${completed} of ${total} tasks COMPLETED`);
    ac.abort();
    out.end();
    await reading;
    const submit = p50p99(submitMs);
    return {
      tasks: total,
      submitP50Ms: submit.p50,
      submitMaxMs: Math.max(...submitMs),
      submitRuns: submitMs.length,
      chainEdges: edges.length,
      edgeP50Ms: edge.p50,
      edgeP99Ms: edge.p99,
      fanOutAllStartedMs: lastFan - rootDone,
      wholeGraphMs,
    };
  } finally {
    ac.abort();
    sm.abort();
  }
}

/** The workflow section of the results, as Markdown. */
export function renderWorkflows(w: WorkflowResult): string[] {
  return [
    "### Workflows (a 1,000-task graph on SQLite)",
    "",
    "A root, 499 tasks after it and a chain of 500 after it, submitted in one SubmitTasks call; one daemon",
    "(capacity 1000) finishes each task at once. Edge: task.completed of a chain task sent -> task.assigned",
    "of the next one received.",
    "",
    `| SubmitTasks of ${w.tasks} p50 ms (max, ${w.submitRuns} runs) | Chain edges | Edge p50 ms | Edge p99 ms (target < 20) | Root end -> all 499 started ms | Whole graph ms |`,
    "| ---: | ---: | ---: | ---: | ---: | ---: |",
    `| ${w.submitP50Ms.toFixed(1)} (${w.submitMaxMs.toFixed(1)}) | ${w.chainEdges} | ${w.edgeP50Ms.toFixed(2)} | ${w.edgeP99Ms.toFixed(2)} | ${w.fanOutAllStartedMs.toFixed(1)} | ${Math.round(w.wholeGraphMs)} |`,
    "",
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  withGateway((gw) => measureWorkflows(gw))
    .then((w) => {
      process.stdout.write(`${renderWorkflows(w).join("\n")}\n`);
      for (const f of failuresSoFar()) process.stdout.write(`FAIL: ${f}\n`);
      process.exitCode = failuresSoFar().length > 0 ? 1 : 0;
    })
    .catch(async (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      await stopAll();
      process.exitCode = 1;
    });
}
