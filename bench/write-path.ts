/**
 * Whether writes are the bottleneck: on one fresh gateway (authentication on, the durable store),
 * per protocol, SubmitTask (task_id empty: every call stores a new task, its event and its audit
 * record, committed and fsynced before the answer) and GetTaskStatus (one task read from the store)
 * in alternation, A B B A A B ..., each run steady state (steady-load.ts), so drift on the machine
 * touches both alike. Target: SubmitTask calls/s at least 80 % of GetTaskStatus calls/s, as the
 * median of the ratios of the runs of each round.
 * Behind the figures, besides the load tool's statuses: 20 real-client calls of each method decode
 * before and after the series, no RPC ended other than OK (GetMetrics `rpc_<code>_total`), and the
 * store holds at least one new task per SubmitTask h2load counted (warm-up calls add more), each
 * counted in `tasks_submitted_total`.
 */
import { check, note } from "./checks.js";
import { type ServerProcess, startGateway } from "./gateway.js";
import { apiClient, benchTaskType, type Method, type Protocol, protocolLabel } from "./protocols.js";
import { readCounters, settle } from "./server-counters.js";
import {
  mean,
  pairedRatio,
  type SteadyRun,
  steadyRounds,
  steadyRun,
  steadySeconds,
  warmUpSeconds,
} from "./steady-load.js";
import { sample } from "./unary.js";

/** Least share of GetTaskStatus calls/s that durable SubmitTask must reach. */
export const writeTarget = 0.8;

/** One protocol's figures. */
export interface WritePathRow {
  readonly protocol: Protocol;
  /** Mean calls/s over the alternating runs. */
  readonly getCallsPerSec: number;
  readonly submitCallsPerSec: number;
  /** Mean server CPU per call, in microseconds. */
  readonly getCpuUsPerCall: number;
  readonly submitCpuUsPerCall: number;
  /** Median over rounds of SubmitTask calls/s ÷ GetTaskStatus calls/s in the same round. */
  readonly ratio: number;
  readonly runs: number;
}

const label = "gateway (write path)";

async function samples(gw: ServerProcess, protocol: Protocol, taskId: string, when: string): Promise<void> {
  const client = apiClient(protocol, gw.baseUrl, gw.token);
  try {
    for (const method of ["GetTaskStatus", "SubmitTask"] as const) {
      await sample(client, `${label} ${protocolLabel[protocol]} ${method} (${when})`, method, taskId, 20);
    }
  } finally {
    client.close();
  }
}

/** Measures every protocol; `rounds` measured runs per method and protocol. */
export async function measureWritePath(
  protocols: readonly Protocol[],
  rounds = steadyRounds,
): Promise<WritePathRow[]> {
  const gw = await startGateway();
  const control = apiClient("grpc", gw.baseUrl, gw.token);
  try {
    const { taskId } = await control.api.submitTask({
      type: benchTaskType,
      payload: { playbook: "site.yml", inventory: "hosts.ini" },
      metadata: { team: "bench" },
    });
    const target = { label, baseUrl: gw.baseUrl, pid: gw.pid, token: gw.token };
    const rows: WritePathRow[] = [];
    for (const protocol of protocols) {
      note(`write path: ${protocolLabel[protocol]}…`);
      await samples(gw, protocol, taskId, "before");
      await settle(control);
      const before = await readCounters(control);
      const runs: Record<Method, SteadyRun[]> = { GetTaskStatus: [], SubmitTask: [] };
      for (let r = 0; r < rounds; r++) {
        const order: Method[] =
          r % 2 === 0 ? ["GetTaskStatus", "SubmitTask"] : ["SubmitTask", "GetTaskStatus"];
        for (const method of order) runs[method].push(await steadyRun(target, protocol, method, taskId));
      }
      await settle(control);
      const after = await readCounters(control);
      const at = `${label} ${protocolLabel[protocol]}`;
      check(
        after.notOk === before.notOk,
        `${at}: ${(after.notOk ?? 0) - (before.notOk ?? 0)} RPCs ended with an error code`,
      );
      const submitted = runs.SubmitTask.reduce((n, r) => n + r.done, 0);
      const stored = after.tasks - before.tasks;
      check(
        stored >= submitted,
        `${at}: ${stored} new tasks stored for ${submitted} SubmitTask calls counted`,
      );
      if (after.submitted !== undefined) {
        check(
          (after.submitted ?? 0) - (before.submitted ?? 0) === stored,
          `${at}: tasks_submitted_total grew by ${(after.submitted ?? 0) - (before.submitted ?? 0)}, the store by ${stored}`,
        );
      }
      await samples(gw, protocol, taskId, "after");
      const row: WritePathRow = {
        protocol,
        getCallsPerSec: mean(runs.GetTaskStatus.map((r) => r.callsPerSec)),
        submitCallsPerSec: mean(runs.SubmitTask.map((r) => r.callsPerSec)),
        getCpuUsPerCall: mean(runs.GetTaskStatus.map((r) => r.cpuUsPerCall)),
        submitCpuUsPerCall: mean(runs.SubmitTask.map((r) => r.cpuUsPerCall)),
        ratio: pairedRatio(runs.SubmitTask, runs.GetTaskStatus),
        runs: rounds,
      };
      check(
        row.ratio >= writeTarget,
        `${protocolLabel[protocol]}: durable SubmitTask/s is ${Math.round(row.ratio * 100)} % of GetTaskStatus/s (median of paired runs), under the ${Math.round(writeTarget * 100)} % target`,
      );
      rows.push(row);
    }
    return rows;
  } finally {
    control.close();
    await gw.stop();
  }
}

/** The section of BENCHMARKS.md. */
export function renderWritePath(rows: readonly WritePathRow[]): string[] {
  if (rows.length === 0) return [];
  const int = (n: number) => Math.round(n).toLocaleString("en-US");
  return [
    `### Write path (durable SubmitTask against GetTaskStatus, 256 in flight, h2load runs of ${steadySeconds} s after a ${warmUpSeconds} s warm-up)`,
    "",
    `| Protocol | GetTaskStatus calls/s (mean) | durable SubmitTask calls/s (mean) | SubmitTask ÷ GetTaskStatus, median of paired runs (target ≥ ${Math.round(writeTarget * 100)} %) | SubmitTask ÷ GetTaskStatus, means | server CPU µs per call, GetTaskStatus / SubmitTask | runs each |`,
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map(
      (r) =>
        `| ${protocolLabel[r.protocol]} | ${int(r.getCallsPerSec)} | ${int(r.submitCallsPerSec)} | ${Math.round(r.ratio * 100)} % | ${Math.round((r.submitCallsPerSec / r.getCallsPerSec) * 100)} % | ${int(r.getCpuUsPerCall)} / ${int(r.submitCpuUsPerCall)} | ${r.runs} |`,
    ),
    "",
  ];
}
