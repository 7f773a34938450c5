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
  /** Median over rounds of the token's calls/s ÷ the open gateway's in the same round. */
  readonly ratio: number;
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

/**
 * Pairs of gateways compared. Two identical Node processes can differ by ten percent for their
 * whole life, which alone would decide a 90 % check; rounds alternate between two pairs, so no
 * single process weighs on every ratio.
 */
const pairs = 2;

/** Measures every protocol; `rounds` measured runs per side and protocol, spread over the pairs. */
export async function measureAuthCost(
  protocols: readonly Protocol[],
  rounds = steadyRounds,
): Promise<AuthCostRow[]> {
  const started: ServerProcess[] = [];
  try {
    // Each pair: [session token, --auth off].
    const sides: [Side, Side][] = [];
    for (let p = 0; p < pairs; p++) {
      const withToken = await startGateway({ auth: true });
      started.push(withToken);
      const open = await startGateway({ auth: false });
      started.push(open);
      if (!withToken.token) {
        note("auth cost: this gateway has no authentication; skipped");
        return [];
      }
      sides.push([
        await side(withToken, `gateway ${p + 1} (session token)`),
        await side(open, `gateway ${p + 1} (--auth off)`),
      ]);
    }
    const rows: AuthCostRow[] = [];
    for (const protocol of protocols) {
      note(`auth cost: ${protocolLabel[protocol]}…`);
      for (const pair of sides) for (const s of pair) await sampleSide(s, protocol);
      const token: SteadyRun[] = [];
      const off: SteadyRun[] = [];
      // Pair 1 A B, pair 2 B A, pair 1 B A, pair 2 A B, ...: whatever drifts during the runs weighs
      // on both sides alike.
      for (let r = 0; r < rounds; r++) {
        const [t, o] = sides[r % pairs] as [Side, Side];
        if ((r >> 1) % 2 === r % 2) {
          token.push(await load(t, protocol));
          off.push(await load(o, protocol));
        } else {
          off.push(await load(o, protocol));
          token.push(await load(t, protocol));
        }
      }
      for (const pair of sides) for (const s of pair) await sampleSide(s, protocol);
      const row: AuthCostRow = {
        protocol,
        tokenCallsPerSec: mean(token.map((x) => x.callsPerSec)),
        openCallsPerSec: mean(off.map((x) => x.callsPerSec)),
        tokenCpuUsPerCall: mean(token.map((x) => x.cpuUsPerCall)),
        openCpuUsPerCall: mean(off.map((x) => x.cpuUsPerCall)),
        ratio: pairedRatio(token, off),
        runs: rounds,
      };
      check(
        row.ratio >= authTarget,
        `${protocolLabel[protocol]}: GetTaskStatus with a session token reaches ${Math.round(row.ratio * 100)} % of the calls/s with --auth off (median of paired runs), under the ${Math.round(authTarget * 100)} % target`,
      );
      rows.push(row);
    }
    return rows;
  } finally {
    await Promise.all(started.map((gw) => gw.stop()));
  }
}

/** The section of BENCHMARKS.md. */
export function renderAuthCost(rows: readonly AuthCostRow[]): string[] {
  if (rows.length === 0) return [];
  const int = (n: number) => Math.round(n).toLocaleString("en-US");
  return [
    `### Cost of authentication (GetTaskStatus, 256 in flight, ${pairs} pairs of gateways, h2load runs of ${steadySeconds} s after a ${warmUpSeconds} s warm-up)`,
    "",
    `| Protocol | calls/s with --auth off (mean) | calls/s with a session token (mean) | token ÷ off, median of paired runs (target ≥ ${Math.round(authTarget * 100)} %) | token ÷ off, means | server CPU µs per call, off / token | runs each |`,
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map(
      (r) =>
        `| ${protocolLabel[r.protocol]} | ${int(r.openCallsPerSec)} | ${int(r.tokenCallsPerSec)} | ${Math.round(r.ratio * 100)} % | ${Math.round((r.tokenCallsPerSec / r.openCallsPerSec) * 100)} % | ${int(r.openCpuUsPerCall)} / ${int(r.tokenCpuUsPerCall)} | ${r.runs} |`,
    ),
    "",
  ];
}
