/**
 * The results as Markdown: machine, tables, checks. Printed to stdout and written into BENCHMARKS.md
 * below the results marker (the intro above it is kept).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { benchmarksIntro } from "./benchmarks-intro.js";
import { type FanOutResult, renderFanOut } from "./fan-out.js";
import { type FirstEventResult, renderFirstEvent } from "./first-event.js";
import { renderFloors, renderSameWork } from "./floors.js";
import { gatewayDir, root } from "./gateway.js";
import { type MemoryResult, memoryTargetBytes } from "./memory.js";
import { protocolLabel } from "./protocols.js";
import { type Figures, levels, type UnaryRow } from "./unary.js";
import { servers } from "./unary-phase.js";
import type { StreamingResult } from "./watchers.js";

export interface Results {
  readonly date: Date;
  /** From describeMachine(), read before this process is pinned to one core. */
  readonly machine: string;
  readonly storeKind: string;
  readonly pinned: boolean;
  readonly unary: readonly UnaryRow[];
  readonly streaming: readonly StreamingResult[];
  readonly firstEvent?: FirstEventResult;
  readonly fanOut?: FanOutResult;
  readonly memory?: MemoryResult;
  readonly failures: readonly string[];
  readonly seconds: number;
}

const marker = "<!-- bench results: everything below is replaced by `npm run bench` -->";

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

/** The peers the gateway's gRPC figures are divided by, with their short names in the table. */
const ratioPeers: readonly { server: string; short: string }[] = [
  { server: servers.grpcJs, short: "grpc-js" },
  { server: servers.grpcJsStore, short: "plain grpc-js + row read" },
  { server: servers.connectNode, short: "connect-node" },
];

function ratioTable(rows: readonly UnaryRow[]): string[] {
  const find = (server: string, method: string) =>
    rows.find((r) => r.server === server && r.protocol === "grpc" && r.method === method);
  const peers = ratioPeers.map((p) => ({ ...p, row: find(p.server, "GetTaskStatus") }));
  const out = [
    `| Gateway gRPC figure | Gateway | ${peers.map((p) => p.server).join(" | ")} | ${peers.map((p) => `gateway ÷ ${p.short}`).join(" | ")} |`,
    `| --- | ---: | ${peers.map(() => "---: | ---:").join(" | ")} |`,
  ];
  for (const method of ["GetTaskStatus", "SubmitTask"]) {
    const gw = find(servers.fastPath, method);
    if (!gw) continue;
    levels.forEach((level, i) => {
      const at = `${level.inFlight} in flight`;
      const g = gw.byLevel[i] as Figures;
      const figures: [string, (f: Figures) => number, (n: number) => string][] = [
        ["calls/s", (f) => f.callsPerSec, int],
        ["p50 ms", (f) => f.p50Ms, ms],
        ["p99 ms", (f) => f.p99Ms, ms],
      ];
      for (const [name, pick, fmt] of figures) {
        const theirs = peers.map((p) => {
          const f = p.row?.byLevel[i];
          return f ? pick(f) : Number.NaN;
        });
        out.push(
          `| ${method} ${name}, ${at} | ${fmt(pick(g))} | ${theirs.map(fmt).join(" | ")} | ${theirs.map((t, j) => `${ratio(pick(g), t)} ${peers[j]?.short}`).join(" | ")} |`,
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
    r.firstEvent?.otherCpu ?? Number.NaN,
    ...[r.fanOut?.gateway, r.fanOut?.peer].map((s) => s?.otherCpu ?? Number.NaN),
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
    ...renderFloors(r.unary),
    ...renderSameWork(r.unary),
    "### Gateway gRPC (fast path) against the reference peers (same h2load command)",
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
  if (r.firstEvent) lines.push(...renderFirstEvent(r.firstEvent));
  if (r.fanOut) lines.push(...renderFanOut(r.fanOut));
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
      `With ${int(m.streams)} streams: ${((m.withStreamsMiB * 1048576) / 1e6).toFixed(0)} MB (target under ${memoryTargetBytes / 1e6} MB for 10,000).`,
      "",
    );
  }
  return lines.join("\n");
}

/** Writes the results into BENCHMARKS.md, keeping whatever stands above the marker. */
export function writeBenchmarksMd(results: string): string {
  const path = join(root, "BENCHMARKS.md");
  let head = benchmarksIntro;
  if (existsSync(path)) {
    const text = readFileSync(path, "utf8");
    const at = text.indexOf(marker);
    if (at >= 0) head = text.slice(0, at);
  }
  writeFileSync(path, `${head}${marker}\n\n${results}`);
  return path;
}
