/**
 * What authentication costs: GetTaskStatus at 256 in flight on two fresh gateways side by side, one
 * with authentication on (every call carries a session token, checked against the store, then
 * scope and rate limits) and one with `--auth off`, measured in alternation per protocol so drift
 * on the machine touches both alike, each run steady state (steady-load.ts).
 * Target: the token's calls/s at least 90 % of the open gateway's.
 */
import { check, note } from "./checks.js";
import { type ServerProcess, startGateway } from "./gateway.js";
import { apiClient, benchTaskType, type Protocol, protocolLabel } from "./protocols.js";
import { mean, type SteadyRun, steadyRun } from "./steady-load.js";
import { sample } from "./unary.js";

/** Least share of the open gateway's calls/s the authenticated one must reach. */
export const authTarget = 0.9;

/** One protocol's figures. */
export interface AuthCostRow {
  readonly protocol: Protocol;
  /** Mean calls/s over the alternating runs. */
  readonly openCallsPerSec: number;
  readonly tokenCallsPerSec: number;
  /** Mean server CPU per call, in microseconds (from /proc, over the measured runs). */
  readonly openCpuUsPerCall: number;
  readonly tokenCpuUsPerCall: number;
  readonly runs: number;
}

interface Side {
  readonly label: string;
  readonly gw: ServerProcess;
  readonly taskId: string;
}

async function side(gw: ServerProcess, label: string): Promise<Side> {
  const client = apiClient("grpc", gw.baseUrl, gw.token);
  try {
    const { taskId } = await client.api.submitTask({
      type: benchTaskType,
      payload: { playbook: "site.yml" },
    });
    return { label, gw, taskId };
  } finally {
    client.close();
  }
}

/** Checks 20 real-client calls of `protocol` decode with the task (the load tool checks only statuses). */
async function sampleSide(s: Side, protocol: Protocol): Promise<void> {
  const client = apiClient(protocol, s.gw.baseUrl, s.gw.token);
  try {
    await sample(client, `${s.label} ${protocolLabel[protocol]}`, "GetTaskStatus", s.taskId, 20);
  } finally {
    client.close();
  }
}

async function load(s: Side, protocol: Protocol): Promise<SteadyRun> {
  return steadyRun(
    { label: s.label, baseUrl: s.gw.baseUrl, pid: s.gw.pid, token: s.gw.token },
    protocol,
    "GetTaskStatus",
    s.taskId,
  );
}

/** Measures every protocol; `rounds` measured runs per gateway and protocol. */
export async function measureAuthCost(protocols: readonly Protocol[], rounds = 4): Promise<AuthCostRow[]> {
  const withToken = await startGateway({ auth: true });
  let open: ServerProcess | undefined;
  try {
    open = await startGateway({ auth: false });
    if (!withToken.token) {
      note("auth cost: this gateway has no authentication; skipped");
      return [];
    }
    const sides = [
      await side(withToken, "gateway (session token)"),
      await side(open, "gateway (--auth off)"),
    ];
    const rows: AuthCostRow[] = [];
    for (const protocol of protocols) {
      note(`auth cost: ${protocolLabel[protocol]}…`);
      for (const s of sides) await sampleSide(s, protocol);
      const runs: SteadyRun[][] = sides.map(() => []);
      // A B B A ...: whatever drifts during the runs weighs on both sides alike.
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? [0, 1] : [1, 0];
        for (const i of order) {
          const s = sides[i];
          if (s) runs[i]?.push(await load(s, protocol));
        }
      }
      for (const s of sides) await sampleSide(s, protocol);
      const of = (i: number, pick: (x: SteadyRun) => number) => mean((runs[i] ?? []).map(pick));
      const row = {
        protocol,
        tokenCallsPerSec: of(0, (x) => x.callsPerSec),
        openCallsPerSec: of(1, (x) => x.callsPerSec),
        tokenCpuUsPerCall: of(0, (x) => x.cpuUsPerCall),
        openCpuUsPerCall: of(1, (x) => x.cpuUsPerCall),
        runs: rounds,
      };
      check(
        row.tokenCallsPerSec >= authTarget * row.openCallsPerSec,
        `${protocolLabel[protocol]}: GetTaskStatus with a session token reaches ${Math.round((row.tokenCallsPerSec / row.openCallsPerSec) * 100)} % of the calls/s with --auth off, under the ${Math.round(authTarget * 100)} % target`,
      );
      rows.push(row);
    }
    return rows;
  } finally {
    await withToken.stop();
    await open?.stop();
  }
}

/** The section of BENCHMARKS.md. */
export function renderAuthCost(rows: readonly AuthCostRow[]): string[] {
  if (rows.length === 0) return [];
  const int = (n: number) => Math.round(n).toLocaleString("en-US");
  return [
    "### Cost of authentication (GetTaskStatus, 256 in flight, h2load after a 2 s warm-up)",
    "",
    `| Protocol | calls/s with --auth off | calls/s with a session token | token ÷ off (target ≥ ${Math.round(authTarget * 100)} %) | server CPU µs per call, off / token | runs each |`,
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map(
      (r) =>
        `| ${protocolLabel[r.protocol]} | ${int(r.openCallsPerSec)} | ${int(r.tokenCallsPerSec)} | ${Math.round((r.tokenCallsPerSec / r.openCallsPerSec) * 100)} % | ${int(r.openCpuUsPerCall)} / ${int(r.tokenCpuUsPerCall)} | ${r.runs} |`,
    ),
    "",
  ];
}
