/**
 * The results as Markdown: machine, tables, checks. Printed to stdout and written into BENCHMARKS.md
 * below the results marker (the intro above it is kept).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { gatewayDir, root } from "./gateway.js";
import type { MemoryResult } from "./memory.js";
import { protocolLabel } from "./protocols.js";
import { type Figures, levels, type UnaryRow } from "./unary.js";
import type { StreamingResult } from "./watchers.js";

export interface Results {
  readonly date: Date;
  /** From describeMachine(), read before this process is pinned to one core. */
  readonly machine: string;
  readonly storeKind: string;
  readonly pinned: boolean;
  readonly unary: readonly UnaryRow[];
  readonly streaming: readonly StreamingResult[];
  readonly memory?: MemoryResult;
  readonly failures: readonly string[];
  readonly seconds: number;
}

const marker = "<!-- bench results: everything below is replaced by `npm run bench` -->";

const intro = `# Benchmarks

Run \`npm run bench\`. It starts the gateway (\`server/src/main.ts\` with \`--log-level warn\` and a fresh
temporary \`--data-dir\` when the gateway has that flag) and two reference servers, loads them, checks
every answer, prints the results and rewrites the results section below (everything above the marker
is kept). It takes about 3 minutes and exits 1 when a check fails (each failure is printed as a
\`FAIL:\` line and listed with the results). It needs \`h2load\` (\`apt-get install -y nghttp2-client\`)
and exits 2 saying so when it is missing; everything else comes with \`npm install\`.
\`SPAGE_BENCH_SECONDS\` changes the length of each measured run (default 5);
\`SPAGE_BENCH_GATEWAY_DIR\` benchmarks the gateway of another checkout (with its own node_modules).

The gateway runs as in production, with authentication on: the bench exchanges the admin key it
prints on its first start for a session token, and every call carries it (checked against the
store on every call, then scopes and rate limits). The limits are set far above what the bench
offers, so they are checked but never refuse a call.

How it measures: servers run pinned to core 0, the load tools and the bench process to core 1 (with
\`taskset\`, when it exists). Native gRPC is loaded with h2load over h2c (prior knowledge); Connect JSON
and gRPC-Web with autocannon over HTTP/1.1. For each server, protocol and call there is a 2 s warm-up,
then per load level a calibration run (1 s; over HTTP/1.1, until 1 s after its connection ramp) that
sizes the measured run to about 5 s of steady load by request count, so every count can be checked
exactly. Each figure comes from one run: expect some noise between
runs, and much more when other processes use the machine (see "Other processes' CPU").

Columns:

- **calls/s**: completed calls per second at 256 calls in flight (h2load \`-c 4 -m 64\`, autocannon
  256 connections) and at 1 in flight (h2load \`-c 1 -m 1\`, 1 connection).
- **p50 / p99 ms**: latency percentiles over every call of the run, as the load tool timed it
  (HTTP/1.1: of the steady part, see the connection ramp).
- **connection ramp s**: autocannon opens its 256 connections at once and sends on each as soon as it
  is up, but Node accepts one connection per event-loop turn, and a turn of a saturated server lasts
  as long as the calls it serves: the last connections get their first answer seconds later. The
  column is the time until every connection had its first answer; the HTTP/1.1 calls/s and latencies
  are taken from the steady part after it (the checks still cover every call of the run). Clients
  that keep their connections, as gRPC-Web and Connect clients do, see the steady figures.
- **server / load CPU**: share of one core used by the server process and by the load tool during the
  run at 256 in flight (from /proc). Near 100 % means that side was the limit.
- **other CPU**: share of a core that other processes on the machine used during the row's two
  measured runs (the larger). Anything but a few % means the row's figures are disturbed.
- **GetTaskStatus** reads one task submitted before the runs; **SubmitTask** leaves \`task_id\` empty, so
  every call stores a new task (durably when the store is \`sqlite\`).
- **grpc-js peer / connect-node peer**: a plain \`@grpc/grpc-js\` server and a bare connect-node server
  (\`connectNodeAdapter\` on \`http2.createServer\`, h2c) answering the same GetTaskStatus, with the
  gateway's exact answer bytes, from an in-memory map; loaded with the same h2load command.
  **gateway ÷ peer** divides the gateway's figure by the peer's: for calls/s below 1x is slower, for
  latency above 1x is slower. The SubmitTask rows are divided by the peers' GetTaskStatus figures (the
  peers have no store): they show what the write path costs on top of a bare server.
- **Streaming**: 100 WatchEvents streams (request \`{}\`) over 4 HTTP/2 connections while another client
  submits tasks at a steady rate for 5 s, on a fresh gateway; each submit reaches every watcher as one
  \`task.submitted\` event. Latency runs from the submit's send to a watcher's receipt; "from event
  timestamp" is the part after the gateway stamped the event. Events/s counts all watchers.
- **Cost of authentication**: GetTaskStatus at 256 in flight on two fresh gateways side by side, one
  with authentication on (session token) and one with \`--auth off\`, four measured runs each per
  protocol, in the order A B B A A B B A; the figures are the means, with the server's CPU per
  call beside them (steadier than calls/s on a machine whose speed drifts). All three protocols are loaded with h2load
  here (HTTP/1.1 with \`--h1\`, 256 connections) after a 2 s warm-up on the same connections, so
  the comparison is not blurred by the connection ramp.
- **Memory**: the gateway process's VmRSS on a fresh gateway: idle 2 s after start, with 10,000 idle
  WatchEvents streams open (raw node:http2, 20 connections), and after they are all closed.
- **Dashboard**: the web dashboard in headless Chromium (\`/usr/bin/chromium\`; the section says it was
  skipped when that is missing) on a fresh gateway holding 10,000 tasks. First view: \`/\` opened with
  the session in sessionStorage, timed in the page from navigation start until a task row and the
  live indicator are painted; 5 fresh pages, the first on an empty cache (cold), target under 1 s for
  the p50 of the others. Events: 50 SubmitTask/s for 10 s with the task list open; the page's own
  WatchEvents response is counted envelope by envelope (a wrapped \`fetch\`), and must hold every
  event sequence of the run; the first page of rows must end equal to ListTasks' 50 newest. Long
  tasks (over 50 ms; blocking time is their part beyond 50 ms) and submit-to-row delays (send to
  the row entering the DOM) show how smoothly it keeps up.

What is checked behind every figure: all HTTP statuses 2xx and no tool errors or timeouts; for h2load,
the response DATA bytes equal calls x the size of a success answer (a gRPC error is an HTTP 200 with
trailers only, which h2load counts as a success); for autocannon, every body holds a success (the
gRPC-Web trailer \`grpc-status: 0\`, the task id, or \`"success":true\`); on the gateway, GetMetrics
\`rpc_ok_total\` grows by exactly the completed calls and no other \`rpc_<code>_total\` grows, and the task
count (ListTasks \`total\`, \`tasks_submitted_total\`) grows by exactly the completed SubmitTask calls and
not at all for GetTaskStatus; 20 identical calls with a real connect-node client of the same protocol
before and after each GetTaskStatus series decode with the task; every watcher receives every event;
every memory stream is live (it receives a probe event), the gateway counts all 10,000 open, and none
once they are closed.

`;

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a");
const ms = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : "n/a");
const pct = (n: number) => (Number.isFinite(n) ? `${Math.round(n * 100)} %` : "n/a");
const seconds = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "n/a");
const ratio = (a: number, b: number) => (b > 0 && Number.isFinite(a / b) ? `${(a / b).toFixed(2)}x` : "n/a");

function git(args: string[]): string {
  try {
    return execFileSync("git", args, {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "";
  }
}

/** nproc, CPU model, memory, Node and h2load versions. */
export function describeMachine(): string {
  let model = cpus()[0]?.model ?? "unknown";
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? model;
  } catch {}
  let nproc = String(cpus().length);
  try {
    nproc = execFileSync("nproc", { encoding: "utf8" }).trim();
  } catch {}
  let h2load = "";
  try {
    h2load = execFileSync("h2load", ["--version"], { encoding: "utf8" }).trim();
  } catch {}
  const gib = (totalmem() / 1024 ** 3).toFixed(1);
  return `${nproc} cores (nproc), ${model}, ${gib} GiB memory, Node ${process.version}, ${h2load}`;
}

function unaryTable(rows: readonly UnaryRow[]): string[] {
  const one = levels.findIndex((l) => l.inFlight === 1);
  const many = levels.findIndex((l) => l.inFlight !== 1);
  const out = [
    "| Server | Protocol | Call | calls/s (256 in flight) | p50 ms (256) | p99 ms (256) | server / load CPU (256) | connection ramp s (256) | calls/s (1 in flight) | p50 ms (1) | p99 ms (1) | other CPU |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    const m = r.byLevel[many] as Figures;
    const o = r.byLevel[one] as Figures;
    out.push(
      `| ${r.server} | ${protocolLabel[r.protocol]} | ${r.method} | ${int(m.callsPerSec)} | ${ms(m.p50Ms)} | ${ms(m.p99Ms)} | ${pct(m.serverCpu)} / ${pct(m.loadCpu)} | ${r.protocol === "grpc" ? "-" : seconds(m.rampSeconds)} | ${int(o.callsPerSec)} | ${ms(o.p50Ms)} | ${ms(o.p99Ms)} | ${pct(Math.max(m.otherCpu, o.otherCpu))} |`,
    );
  }
  return out;
}

/** The write-path target: durable SubmitTask/s at least this share of GetTaskStatus/s, per protocol. */
export const writeTarget = 0.8;

/** Durable SubmitTask/s over the gateway's own GetTaskStatus/s, per protocol, at 256 in flight. */
export function writeRatios(rows: readonly UnaryRow[]): { protocol: UnaryRow["protocol"]; ratio: number }[] {
  const many = levels.findIndex((l) => l.inFlight !== 1);
  const gateway = rows.filter((r) => r.server === "gateway");
  return gateway
    .filter((r) => r.method === "SubmitTask")
    .map((submit) => {
      const get = gateway.find((r) => r.method === "GetTaskStatus" && r.protocol === submit.protocol);
      const a = (submit.byLevel[many] as Figures).callsPerSec;
      const b = get ? (get.byLevel[many] as Figures).callsPerSec : Number.NaN;
      return { protocol: submit.protocol, ratio: a / b };
    });
}

function writeTable(rows: readonly UnaryRow[]): string[] {
  return [
    `| Protocol | durable SubmitTask/s ÷ GetTaskStatus/s, 256 in flight (target ≥ ${pct(writeTarget)}) |`,
    "| --- | ---: |",
    ...writeRatios(rows).map((w) => `| ${protocolLabel[w.protocol]} | ${pct(w.ratio)} |`),
  ];
}

function ratioTable(rows: readonly UnaryRow[]): string[] {
  const find = (server: string, method: string) =>
    rows.find((r) => r.server === server && r.protocol === "grpc" && r.method === method);
  const grpcJs = find("grpc-js peer", "GetTaskStatus");
  const connectNode = find("connect-node peer", "GetTaskStatus");
  const out = [
    "| Gateway gRPC figure | Gateway | grpc-js peer | connect-node peer | gateway ÷ grpc-js | gateway ÷ connect-node |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const method of ["GetTaskStatus", "SubmitTask"]) {
    const gw = find("gateway", method);
    if (!gw) continue;
    levels.forEach((level, i) => {
      const at = `${level.inFlight} in flight`;
      const g = gw.byLevel[i] as Figures;
      const a = grpcJs?.byLevel[i];
      const b = connectNode?.byLevel[i];
      const figures: [string, (f: Figures) => number, (n: number) => string][] = [
        ["calls/s", (f) => f.callsPerSec, int],
        ["p50 ms", (f) => f.p50Ms, ms],
        ["p99 ms", (f) => f.p99Ms, ms],
      ];
      for (const [name, pick, fmt] of figures) {
        const pa = a ? pick(a) : Number.NaN;
        const pb = b ? pick(b) : Number.NaN;
        out.push(
          `| ${method} ${name}, ${at} | ${fmt(pick(g))} | ${fmt(pa)} | ${fmt(pb)} | ${ratio(pick(g), pa)} grpc-js | ${ratio(pick(g), pb)} connect-node |`,
        );
      }
    });
  }
  return out;
}

/** One line on what other processes used while the bench measured: noise in every figure. */
function otherLoad(r: Results): string {
  const shares = [
    ...r.unary.flatMap((row) => row.byLevel.map((f) => f.otherCpu)),
    ...r.streaming.map((s) => s.otherCpu),
  ].filter(Number.isFinite);
  if (shares.length === 0) return "- Other processes' CPU during the runs: unknown";
  const max = Math.max(...shares);
  const mean = shares.reduce((a, b) => a + b, 0) / shares.length;
  const warn = max > 0.1 ? " (**the machine was not quiet: figures are disturbed**)" : "";
  return `- Other processes' CPU during the measured runs: mean ${pct(mean)}, max ${pct(max)} of a core${warn}`;
}

/** The results section as Markdown. */
export function renderResults(r: Results): string {
  const commit = git(["rev-parse", "--short", "HEAD"]);
  const dirty = git(["status", "--porcelain", "--", "server", "proto", "gen"]) !== "";
  const source =
    gatewayDir === root
      ? `commit ${commit || "unknown"}${dirty ? " with uncommitted changes in server/, proto/ or gen/" : ""}`
      : `from ${gatewayDir} (SPAGE_BENCH_GATEWAY_DIR)`;
  const lines = [
    `## Results of ${r.date.toISOString().slice(0, 16).replace("T", " ")} UTC`,
    "",
    `- Machine: ${r.machine}`,
    `- Gateway: ${source}, store \`${r.storeKind}\`; pinned with taskset: ${r.pinned ? "yes" : "no (taskset missing)"}; bench took ${Math.round(r.seconds)} s`,
    otherLoad(r),
    `- Checks: ${r.failures.length === 0 ? "all passed" : `${r.failures.length} FAILED (figures below are not trustworthy)`}`,
    ...r.failures.map((f) => `  - FAIL: ${f}`),
    "",
    "### Unary calls",
    "",
    ...unaryTable(r.unary),
    "",
    "### Write path (durable SubmitTask against GetTaskStatus)",
    "",
    ...writeTable(r.unary),
    "",
    "### Gateway gRPC against the reference peers (same h2load command)",
    "",
    ...ratioTable(r.unary),
    "",
  ];
  if (r.streaming.length > 0) {
    lines.push(
      "### Streaming (WatchEvents)",
      "",
      "| Watchers (HTTP/2 connections) | Submits/s for 5 s | Events delivered | Events/s delivered | p50 ms | p99 ms | p99 ms from event timestamp | gateway / bench CPU | other CPU |",
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    );
    for (const s of r.streaming) {
      lines.push(
        `| ${s.watchers} (${s.sessions}) | ${int(s.submitRate)} | ${int(s.delivered)} of ${int(s.submitted * s.watchers)} | ${int(s.eventsPerSec)} | ${ms(s.p50Ms)} | ${ms(s.p99Ms)} | ${ms(s.p99FromStampMs)} | ${pct(s.gatewayCpu)} / ${pct(s.clientCpu)} | ${pct(s.otherCpu)} |`,
      );
    }
    lines.push("");
  }
  const m = r.memory;
  if (m) {
    lines.push(
      "### Memory (gateway VmRSS)",
      "",
      "| Gateway state | RSS MiB |",
      "| --- | ---: |",
      `| idle after start | ${m.idleMiB.toFixed(1)} |`,
      `| ${int(m.streams)} idle WatchEvents streams over ${m.connections} HTTP/2 connections | ${m.withStreamsMiB.toFixed(1)} (+${m.perStreamKiB.toFixed(1)} KiB per stream) |`,
      `| after closing them | ${m.afterCloseMiB.toFixed(1)} |`,
      "",
    );
  }
  return lines.join("\n");
}

/** Writes the results into BENCHMARKS.md, keeping whatever stands above the marker. */
export function writeBenchmarksMd(results: string): string {
  const path = join(root, "BENCHMARKS.md");
  let head = intro;
  if (existsSync(path)) {
    const text = readFileSync(path, "utf8");
    const at = text.indexOf(marker);
    if (at >= 0) head = text.slice(0, at);
  }
  writeFileSync(path, `${head}${marker}\n\n${results}`);
  return path;
}
