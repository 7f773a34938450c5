/**
 * The PostgreSQL section: gateways on one PostgreSQL schema of the local server (a fresh schema per
 * run, dropped afterwards), auth on. SubmitTask/s and GetTaskStatus/s from 64 calls in flight over
 * native gRPC with one replica and with two (calls split between them); cross-replica event latency
 * (SubmitTask sent to A -> its task.submitted event received by a WatchEvents watcher on B); and
 * submit on A -> started on an idle daemon connected to B. Run on its own with
 * `tsx bench/postgres.ts` (prints the table), or as a phase of `npm run bench`.
 */
import { randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import pg from "pg";
import { SpageAPI } from "../gen/spage/api/tasks_pb.js";
import { type Event, EventSchema, TaskPriority } from "../gen/spage/core/common_pb.js";
import { fail } from "./checks.js";
import { type ServerProcess, startGateway, stopAll } from "./gateway.js";
import { bearer } from "./protocols.js";
import { p50p99 } from "./stats.js";

/** The database the bench uses (SPAGE_BENCH_DATABASE_URL overrides). */
const databaseUrl = process.env.SPAGE_BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** What the PostgreSQL phase measured. */
export interface PostgresResult {
  readonly oneReplica: { readonly submitPerSec: number; readonly getPerSec: number };
  readonly twoReplicas: { readonly submitPerSec: number; readonly getPerSec: number };
  readonly eventLatency: { readonly p50: number; readonly p99: number; readonly samples: number };
  readonly startLatency: { readonly p50: number; readonly p99: number; readonly samples: number };
}

type Api = Client<typeof SpageAPI>;

function apiOf(gw: ServerProcess, token: string): { api: Api; close: () => void } {
  const sm = new Http2SessionManager(gw.baseUrl);
  const api = createClient(
    SpageAPI,
    createGrpcTransport({ baseUrl: gw.baseUrl, sessionManager: sm, interceptors: bearer(token) }),
  );
  return { api, close: () => sm.abort() };
}

/** Calls `call` with `inFlight` calls at once for `seconds`; returns completed calls per second. */
async function rate(
  inFlight: number,
  seconds: number,
  call: (i: number) => Promise<unknown>,
): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let done = 0;
  let n = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        await call(n++);
        done++;
      }
    }),
  );
  return done / seconds;
}

async function throughput(
  apis: readonly Api[],
  prefix: string,
): Promise<{ submitPerSec: number; getPerSec: number }> {
  const pick = (i: number) => apis[i % apis.length] as Api;
  // Warm-up, then the measured runs.
  await rate(16, 1, (i) => pick(i).submitTask({ taskId: `${prefix}-w-${i}`, type: "bench-pg" }));
  const submitPerSec = await rate(64, 4, (i) =>
    pick(i).submitTask({ taskId: `${prefix}-${i}`, type: "bench-pg" }),
  );
  const getPerSec = await rate(64, 4, (i) => pick(i).getTaskStatus({ taskId: `${prefix}-${i % 500}` }));
  return { submitPerSec, getPerSec };
}

/** Event latency: submit on A, received by a watcher on B; one at a time. */
async function eventLatency(a: Api, b: Api, samples: number): Promise<number[]> {
  const waiting = new Map<string, () => void>();
  const ac = new AbortController();
  const watching = (async () => {
    try {
      for await (const ev of b.watchEvents({ types: ["task.submitted"] }, { signal: ac.signal })) {
        waiting.get(ev.taskId)?.();
      }
    } catch {
      // ended by the abort
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  const out: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const id = `bench-pg-ev-${process.pid}-${i}`;
      const seen = new Promise<void>((resolve) => waiting.set(id, resolve));
      const t0 = performance.now();
      await a.submitTask({ taskId: id, type: "bench-pg-event" });
      await Promise.race([seen, new Promise((r) => setTimeout(r, 5000))]);
      out.push(performance.now() - t0);
      waiting.delete(id);
    }
  } finally {
    ac.abort();
    await watching;
  }
  return out;
}

/** Submit on A -> `task.started` reported by an idle daemon connected to B. */
async function startLatency(a: Api, b: Api, samples: number): Promise<number[]> {
  const outbox: Event[] = [];
  let wake: (() => void) | undefined;
  const ac = new AbortController();
  const push = (type: string, data: Record<string, string>) => {
    outbox.push(create(EventSchema, { id: `bench-pg-d-${outbox.length}-${Math.random()}`, type, data }));
    wake?.();
  };
  async function* out() {
    for (;;) {
      const ev = outbox.shift();
      if (ev) {
        yield ev;
        continue;
      }
      if (ac.signal.aborted) return;
      await new Promise<void>((r) => {
        wake = r;
      });
    }
  }
  const started = new Map<string, () => void>();
  let welcomed!: () => void;
  const welcome = new Promise<void>((r) => {
    welcomed = r;
  });
  push("daemon.hello", { daemon_id: `bench-pg-daemon-${process.pid}`, capacity: "4", labels: "bench=pg" });
  const channel = (async () => {
    try {
      for await (const ev of b.streamEvents(out(), { signal: ac.signal })) {
        if (ev.type === "daemon.welcome") welcomed();
        if (ev.type === "task.assigned") {
          const id = ev.data.task_id ?? "";
          push("task.started", { task_id: id });
          started.get(id)?.();
          push("task.completed", { task_id: id, exit_code: "0" });
        }
      }
    } catch {
      // ended by the abort
    }
  })();
  const beat = setInterval(() => push("daemon.heartbeat", {}), 2000);
  const times: number[] = [];
  try {
    await welcome;
    for (let i = 0; i < samples; i++) {
      const id = `bench-pg-start-${process.pid}-${i}`;
      const seen = new Promise<void>((resolve) => started.set(id, resolve));
      const t0 = performance.now();
      // HIGH: ahead of the throughput runs' tasks, which stay queued (no daemon has their label).
      await a.submitTask({
        taskId: id,
        type: "bench-pg-start",
        priority: TaskPriority.HIGH,
        payload: { target_labels: "bench=pg" },
      });
      await Promise.race([seen, new Promise((r) => setTimeout(r, 5000))]);
      times.push(performance.now() - t0);
      started.delete(id);
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    clearInterval(beat);
    ac.abort();
    wake?.();
    await channel;
  }
  return times;
}

/** Runs the PostgreSQL measurements on a fresh schema. */
export async function measurePostgres(): Promise<PostgresResult> {
  const schema = `spage_bench_${randomBytes(4).toString("hex")}`;
  const database = { url: databaseUrl, schema };
  try {
    const a = await startGateway({ database });
    const one = apiOf(a, a.token);
    const oneReplica = await throughput([one.api], "one");
    const b = await startGateway({ database, token: a.token });
    const two = apiOf(b, a.token);
    const twoReplicas = await throughput([one.api, two.api], "two");
    const ev = await eventLatency(one.api, two.api, 300);
    const st = await startLatency(one.api, two.api, 300);
    one.close();
    two.close();
    const e = p50p99(ev);
    const s = p50p99(st);
    if (s.p99 >= 50)
      fail(`PostgreSQL: submit on A to start at B p99 ${s.p99.toFixed(1)} ms, target under 50 ms`);
    return {
      oneReplica,
      twoReplicas,
      eventLatency: { ...e, samples: ev.length },
      startLatency: { ...s, samples: st.length },
    };
  } finally {
    await stopAll();
    const c = new pg.Client({ connectionString: databaseUrl });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
    await c.end();
  }
}

/** The section's Markdown. */
export function renderPostgres(r: PostgresResult): string[] {
  const n = (x: number) => String(Math.round(x));
  return [
    "### PostgreSQL (one schema of the local server, auth on, native gRPC, 64 in flight)",
    "",
    "| Gateways | SubmitTask/s | GetTaskStatus/s |",
    "| --- | ---: | ---: |",
    `| 1 | ${n(r.oneReplica.submitPerSec)} | ${n(r.oneReplica.getPerSec)} |`,
    `| 2 (calls split) | ${n(r.twoReplicas.submitPerSec)} | ${n(r.twoReplicas.getPerSec)} |`,
    "",
    "| Across two gateways | samples | p50 ms | p99 ms |",
    "| --- | ---: | ---: | ---: |",
    `| event written on A, received by a watcher on B | ${r.eventLatency.samples} | ${r.eventLatency.p50.toFixed(2)} | ${r.eventLatency.p99.toFixed(2)} |`,
    `| submit on A, started on a daemon at B (target p99 < 50) | ${r.startLatency.samples} | ${r.startLatency.p50.toFixed(2)} | ${r.startLatency.p99.toFixed(2)} |`,
    "",
    "Both gateways, PostgreSQL and the load share this machine's cores: with two cores, two replicas",
    "cannot add throughput here; the figures show the cost of sharing one database, not scale-out.",
    "",
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  measurePostgres().then(
    (r) => {
      process.stdout.write(`${renderPostgres(r).join("\n")}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
