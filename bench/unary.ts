/**
 * Unary calls under load: GetTaskStatus and SubmitTask per protocol at 1 and 256 calls in flight. Load
 * tools count a gRPC error (HTTP 200 with grpc-status != 0) as a success, so every measured run is
 * checked through the server too: its RPC outcome counters, its task count, and real-client samples.
 */

import { performance } from "node:perf_hooks";
import { toBinary } from "@bufbuild/protobuf";
import { GetTaskStatusResponseSchema, SubmitTaskResponseSchema } from "../gen/spage/api/tasks_pb.js";
import { runAutocannon } from "./autocannon.js";
import { check, note } from "./checks.js";
import { cpuSeconds, machineBusySeconds } from "./gateway.js";
import { runH2load } from "./h2load.js";
import {
  type ApiClient,
  apiClient,
  benchTaskType,
  type Method,
  type Protocol,
  protocolLabel,
  rawRequest,
} from "./protocols.js";
import { type Counters, ownCallsBetweenReads, readCounters, settle } from "./server-counters.js";

/** Seconds of each measured run. */
export const measureSeconds = Number(process.env.SPAGE_BENCH_SECONDS || 5);

/** A load level: calls in flight, as h2load clients x streams or autocannon connections. */
export interface Level {
  readonly inFlight: number;
  readonly h2Clients: number;
  readonly h2Streams: number;
  readonly connections: number;
}
export const levels: readonly Level[] = [
  { inFlight: 1, h2Clients: 1, h2Streams: 1, connections: 1 },
  { inFlight: 256, h2Clients: 4, h2Streams: 64, connections: 256 },
];

/** The figures of one measured run. */
export interface Figures {
  readonly callsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly calls: number;
  /** Share of one core the server used during the run (1 = 100 %). */
  readonly serverCpu: number;
  /** Share of one core the load tool used during the run. */
  readonly loadCpu: number;
  /** Share of a core used by everything else on the machine (other processes) during the run. */
  readonly otherCpu: number;
  /**
   * HTTP/1.1 runs: seconds until every connection had its first answer, and the calls completed by
   * then; the other figures are from the steady part after it (see autocannon.ts). 0 for h2load.
   */
  readonly rampSeconds: number;
  readonly rampCalls: number;
}

/** One table row: a server, protocol and call, at each level (same order as `levels`). */
export interface UnaryRow {
  readonly server: string;
  readonly protocol: Protocol;
  readonly method: Method;
  readonly byLevel: Figures[];
}

/** What one server is, for the unary runs. */
export interface UnaryTarget {
  readonly server: string;
  readonly baseUrl: string;
  readonly pid: number;
  /** True for the gateway: it has ListTasks, SubmitTask and GetMetrics to check against. */
  readonly full: boolean;
  /** Session token sent with every call ("" for none). */
  readonly token: string;
  /**
   * For a gateway with the unary fast path: true when it must serve every call (fast_path_calls_total
   * grows by the calls), false when it must serve none (`--no-fast-path`). Unset: not checked.
   */
  readonly fastPath?: boolean;
}

/** What a correct response looks like, for the load tools' own checks. */
interface Expectation {
  /** Response DATA bytes of one gRPC call (the enveloped message). */
  readonly grpcResponseBytes: number;
  /** Checks an HTTP/1.1 response body as autocannon hands it over. */
  readonly verifyBody: (body: string) => boolean;
}

interface Shot extends Figures {
  readonly problems: string[];
}

async function shoot(
  target: UnaryTarget,
  protocol: Protocol,
  method: Method,
  taskId: string,
  level: Level,
  amount: { durationS: number; steadySeconds?: number } | { requests: number },
  expect: Expectation,
): Promise<Shot> {
  const request = rawRequest(protocol, method, taskId, target.token);
  const url = `${target.baseUrl}${request.path}`;
  const problems: string[] = [];
  const exact = "requests" in amount;
  const cpu0 = cpuSeconds(target.pid);
  const machine0 = machineBusySeconds();
  const bench0 = process.cpuUsage();
  const t0 = performance.now();
  // Shares of a core over the run: the server's, and everyone else's but the server, this process
  // and h2load.
  const cpuShares = (h2loadSeconds: number) => {
    const wall = (performance.now() - t0) / 1000;
    const server = cpuSeconds(target.pid) - cpu0;
    const bench = process.cpuUsage(bench0);
    const ours = server + (bench.user + bench.system) / 1e6 + h2loadSeconds;
    return { serverCpu: server / wall, otherCpu: Math.max(0, machineBusySeconds() - machine0 - ours) / wall };
  };
  if (protocol === "grpc") {
    const r = await runH2load({
      url,
      request,
      clients: level.h2Clients,
      streamsPerClient: level.h2Streams,
      ...amount,
    });
    const shares = cpuShares(r.cpuSeconds);
    if (r.failed + r.errored + r.timeout > 0) {
      problems.push(`h2load: ${r.failed} failed, ${r.errored} errored, ${r.timeout} timed out`);
    }
    if (r.statusOther > 0 || r.loggedNon2xx > 0) {
      problems.push(`h2load: ${r.statusOther + r.loggedNon2xx} responses not 2xx`);
    }
    if (exact) {
      if (r.done !== amount.requests || r.status2xx !== amount.requests) {
        problems.push(`h2load: ${r.done} done and ${r.status2xx} 2xx of ${amount.requests} requests`);
      }
      const want = r.done * expect.grpcResponseBytes;
      if (r.dataBytes !== want) {
        problems.push(
          `h2load: ${r.dataBytes} response data bytes, want ${want} (${r.done} x ${expect.grpcResponseBytes}): some calls did not return the message (a gRPC error is trailers only)`,
        );
      }
    }
    return {
      callsPerSec: r.callsPerSec,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      calls: r.done,
      ...shares,
      loadCpu: r.cpuSeconds / r.seconds,
      rampSeconds: 0,
      rampCalls: 0,
      problems,
    };
  }
  const r = await runAutocannon({
    url,
    request,
    connections: level.connections,
    verifyBody: expect.verifyBody,
    ...amount,
  });
  const shares = cpuShares(0);
  if (r.non2xx + r.errors + r.timeouts > 0) {
    problems.push(`autocannon: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
  }
  if (r.mismatches > 0) problems.push(`autocannon: ${r.mismatches} response bodies are not a success`);
  if (exact && !(r.rampSeconds >= 0)) {
    problems.push("autocannon: some connection never got an answer, so the run had no steady part");
  }
  if (exact && (r.completed !== amount.requests || r.status2xx !== amount.requests)) {
    problems.push(
      `autocannon: ${r.completed} completed and ${r.status2xx} 2xx of ${amount.requests} requests (${r.sent} sent)`,
    );
  }
  return {
    callsPerSec: r.callsPerSec,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    calls: r.completed,
    ...shares,
    loadCpu: r.cpuSeconds / r.seconds,
    rampSeconds: r.rampSeconds,
    rampCalls: r.rampCalls,
    problems,
  };
}

/** Sends `n` identical calls with a real client and checks each decodes as a success; returns one. */
export async function sample(
  client: ApiClient,
  label: string,
  method: Method,
  taskId: string,
  n: number,
): Promise<Uint8Array | undefined> {
  let bytes: Uint8Array | undefined;
  let bad = 0;
  let firstError = "";
  for (let i = 0; i < n; i++) {
    try {
      if (method === "GetTaskStatus") {
        const res = await client.api.getTaskStatus({ taskId });
        if (res.task?.id !== taskId) throw new Error(`answer has task ${JSON.stringify(res.task?.id)}`);
        bytes = toBinary(GetTaskStatusResponseSchema, res);
      } else {
        const res = await client.api.submitTask({ type: benchTaskType });
        if (!res.success || res.taskId === "") throw new Error("answer is not a success");
        bytes = toBinary(SubmitTaskResponseSchema, res);
      }
    } catch (err) {
      bad++;
      firstError ||= err instanceof Error ? err.message : String(err);
    }
  }
  check(bad === 0, `${label}: ${bad} of ${n} real-client calls failed: ${firstError}`);
  return bytes;
}

/** Checks what the gateway counted over one measured run against what the load tool reported. */
function checkCounters(
  target: UnaryTarget,
  label: string,
  method: Method,
  calls: number,
  before: Counters,
  after: Counters,
): void {
  if (target.fastPath !== undefined) {
    const served = (after.fastPath ?? 0) - (before.fastPath ?? 0);
    const want = target.fastPath ? calls + ownCallsBetweenReads : 0;
    check(
      served === want,
      `${label}: the fast path served ${served} calls, want ${want}${target.fastPath ? ` (${calls} + ${ownCallsBetweenReads} of the bench's own)` : " (--no-fast-path)"}`,
    );
  }
  const created = after.tasks - before.tasks;
  const want = method === "SubmitTask" ? calls : 0;
  check(
    created === want,
    `${label}: the gateway stored ${created} new tasks for ${calls} calls (want ${want})`,
  );
  if (before.submitted !== undefined && after.submitted !== undefined) {
    const submitted = after.submitted - before.submitted;
    check(submitted === want, `${label}: tasks_submitted_total grew by ${submitted} (want ${want})`);
  }
  if (before.ok !== undefined && after.ok !== undefined) {
    const ok = after.ok - before.ok - ownCallsBetweenReads;
    const notOk = (after.notOk ?? 0) - (before.notOk ?? 0);
    check(notOk === 0, `${label}: the gateway counted ${notOk} failed RPCs`);
    check(ok === calls, `${label}: the gateway counted ${ok} OK RPCs for ${calls} calls`);
  }
}

/** Samples 20 real-client calls and derives what a correct answer looks like for the load tools. */
async function expectation(
  client: ApiClient,
  label: string,
  protocol: Protocol,
  method: Method,
  taskId: string,
): Promise<Expectation> {
  const one = await sample(client, label, method, taskId, 20);
  const grpcResponseBytes = one ? one.length + 5 : 0;
  const verifyBody =
    protocol === "grpc-web"
      ? (body: string) =>
          body.endsWith("grpc-status: 0\r\n") && (method === "SubmitTask" || body.includes(taskId))
      : method === "GetTaskStatus"
        ? (body: string) => body.includes(`"id":"${taskId}"`)
        : (body: string) => body.includes('"success":true');
  return { grpcResponseBytes, verifyBody };
}

/**
 * Measures `method` over `protocol` on one server at every level: a 2 s warm-up, then per level a
 * calibration run (1 s, or for HTTP/1.1 until 1 s after its connection ramp) which sizes the measured
 * run to ~measureSeconds of steady load, and the measured run by request count, so that every count
 * can be checked exactly.
 */
export async function measureUnary(
  target: UnaryTarget,
  protocol: Protocol,
  method: Method,
  taskId: string,
): Promise<UnaryRow> {
  const label = `${target.server} ${protocolLabel[protocol]} ${method}`;
  note(`${label}…`);
  const client = apiClient(protocol, target.baseUrl, target.token);
  const control = target.full ? apiClient("grpc", target.baseUrl, target.token) : undefined;
  try {
    const expect = await expectation(client, label, protocol, method, taskId);
    const manyLevel = levels[levels.length - 1] as Level;
    await shoot(target, protocol, method, taskId, manyLevel, { durationS: 2 }, expect);
    const byLevel: Figures[] = [];
    for (const level of levels) {
      const at = `${label} at ${level.inFlight} in flight`;
      const calibration = protocol === "grpc" ? { durationS: 1 } : { durationS: 15, steadySeconds: 1 };
      const calib = await shoot(target, protocol, method, taskId, level, calibration, expect);
      const requests =
        Math.max(level.inFlight * 4, Math.round(calib.callsPerSec * measureSeconds)) + calib.rampCalls;
      if (control) await settle(control);
      const before = control ? await readCounters(control) : undefined;
      const shot = await shoot(target, protocol, method, taskId, level, { requests }, expect);
      for (const p of shot.problems) check(false, `${at}: ${p}`);
      if (control && before) {
        checkCounters(target, at, method, shot.calls, before, await readCounters(control));
      }
      byLevel.push(shot);
    }
    if (method === "GetTaskStatus") await sample(client, `${label} (after load)`, method, taskId, 20);
    return { server: target.server, protocol, method, byLevel };
  } finally {
    client.close();
    control?.close();
  }
}
