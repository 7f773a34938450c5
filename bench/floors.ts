/**
 * "Fast path against the floors": the gateway's GetTaskStatus figures, with its fast path and with
 * stock Connect, against the grpc-js peer and the raw floors measured in the same run with the same
 * load commands, each against a target. The targets are checks on the fast-path figures only; the
 * stock Connect column shows where the fast path started from.
 */
import { fail } from "./checks.js";
import { type Protocol, protocolLabel } from "./protocols.js";
import { type Figures, levels, type UnaryRow } from "./unary.js";
import { servers } from "./unary-phase.js";

/** One target: a calls/s ratio against a reference server, or a bound on the idle p99. */
export type FloorTarget =
  | {
      readonly kind: "ratio";
      readonly protocol: Protocol;
      readonly reference: string;
      readonly atLeast: number;
    }
  | { readonly kind: "idle-p99"; readonly protocol: Protocol; readonly underMs: number };

/** The targets, in table order. Ratios are of calls/s at 256 in flight; the idle p99 is at 1 in flight. */
export const floorTargets: readonly FloorTarget[] = [
  { kind: "ratio", protocol: "grpc", reference: servers.grpcJs, atLeast: 1.0 },
  { kind: "ratio", protocol: "grpc", reference: servers.h2Floor, atLeast: 0.6 },
  { kind: "ratio", protocol: "connect-json", reference: servers.h1Floor, atLeast: 0.5 },
  { kind: "ratio", protocol: "grpc-web", reference: servers.h1Floor, atLeast: 0.6 },
  { kind: "idle-p99", protocol: "grpc", underMs: 3 },
];

const manyLevel = levels.findIndex((l) => l.inFlight !== 1);
const oneLevel = levels.findIndex((l) => l.inFlight === 1);

function figures(rows: readonly UnaryRow[], server: string, protocol: Protocol, level: number) {
  const row = rows.find(
    (r) => r.server === server && r.protocol === protocol && r.method === "GetTaskStatus",
  );
  return row?.byLevel[level] as Figures | undefined;
}

/** A target evaluated for one gateway: the compared value, the gateway's own figure, the reference's. */
interface Evaluation {
  readonly value: number;
  readonly figure: number;
  readonly reference: number;
  readonly met: boolean;
}

function evaluate(rows: readonly UnaryRow[], t: FloorTarget, server: string): Evaluation {
  if (t.kind === "idle-p99") {
    const p99 = figures(rows, server, t.protocol, oneLevel)?.p99Ms ?? Number.NaN;
    return { value: p99, figure: p99, reference: Number.NaN, met: p99 < t.underMs };
  }
  const figure = figures(rows, server, t.protocol, manyLevel)?.callsPerSec ?? Number.NaN;
  const reference = figures(rows, t.reference, t.protocol, manyLevel)?.callsPerSec ?? Number.NaN;
  const value = figure / reference;
  return { value, figure, reference, met: value >= t.atLeast };
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a");
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "n/a");
const times = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : "n/a");

function describe(t: FloorTarget): string {
  return t.kind === "ratio"
    ? `${protocolLabel[t.protocol]} GetTaskStatus calls/s (256 in flight) ÷ ${t.reference}`
    : `${protocolLabel[t.protocol]} GetTaskStatus p99 ms, 1 in flight`;
}

function goal(t: FloorTarget): string {
  return t.kind === "ratio" ? `≥ ${times(t.atLeast)}` : `< ${t.underMs} ms`;
}

function shown(t: FloorTarget, e: Evaluation): string {
  return t.kind === "ratio" ? `${times(e.value)} (${int(e.figure)})` : ms(e.value);
}

/** Calls fail() for every target the fast-path gateway misses (or that could not be computed). */
export function checkFloors(rows: readonly UnaryRow[]): void {
  for (const t of floorTargets) {
    const e = evaluate(rows, t, servers.fastPath);
    if (!e.met) {
      const what = Number.isFinite(e.value) ? shown(t, e) : "not measured";
      fail(`fast path: ${describe(t)} is ${what}, target ${goal(t)}`);
    }
  }
}

/** The section of BENCHMARKS.md. */
export function renderFloors(rows: readonly UnaryRow[]): string[] {
  const out = [
    "### Fast path against the floors (GetTaskStatus, same load commands)",
    "",
    "| Figure | Target | Fast path | Stock Connect | Reference calls/s | Fast path meets target |",
    "| --- | ---: | ---: | ---: | ---: | :---: |",
  ];
  for (const t of floorTargets) {
    const fast = evaluate(rows, t, servers.fastPath);
    const stock = evaluate(rows, t, servers.stock);
    const reference = t.kind === "ratio" ? int(fast.reference) : "-";
    out.push(
      `| ${describe(t)} | ${goal(t)} | ${shown(t, fast)} | ${shown(t, stock)} | ${reference} | ${fast.met ? "yes" : "**no**"} |`,
    );
  }
  out.push("");
  return out;
}

/** Per protocol: the floor, and the plain server doing the same work as the gateway's call. */
const sameWork: readonly { protocol: Protocol; floor: string; plain: string }[] = [
  { protocol: "grpc", floor: servers.h2Floor, plain: servers.grpcJsStore },
  { protocol: "connect-json", floor: servers.h1Floor, plain: servers.h1Store },
  { protocol: "grpc-web", floor: servers.h1Floor, plain: servers.h1Store },
];

/**
 * The "same work" table: how far a plain server doing only the call's own work (id check, store
 * read, encoding; no auth or interceptors) gets against the floor, beside the gateway. Shown, not
 * checked: it tells whether a ratio target is within reach of any server that does the work.
 */
export function renderSameWork(rows: readonly UnaryRow[]): string[] {
  const out = [
    "### The same work on a plain server (GetTaskStatus, 256 in flight)",
    "",
    "| Protocol | Gateway calls/s | Plain server reading the row | Floor | Gateway ÷ floor | Plain server ÷ floor | Gateway ÷ plain server |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const w of sameWork) {
    const calls = (server: string) => figures(rows, server, w.protocol, manyLevel)?.callsPerSec ?? Number.NaN;
    const [gw, plain, floor] = [calls(servers.fastPath), calls(w.plain), calls(w.floor)];
    out.push(
      `| ${protocolLabel[w.protocol]} | ${int(gw)} | ${int(plain)} (${w.plain}) | ${int(floor)} | ${times(gw / floor)} | ${times(plain / floor)} | ${times(gw / plain)} |`,
    );
  }
  out.push("");
  return out;
}
