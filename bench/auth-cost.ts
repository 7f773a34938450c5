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
 * Rounds measured on one pair of gateways before it is replaced by a fresh pair. Two identical
 * Node processes can differ by ten percent and more for their whole life, which alone would decide
 * a 90 % check; with a fresh pair every two rounds, no one process weighs on more than two of the
 * ratios whose median is checked.
 */
const roundsPerPair = 2;

/** A fresh pair [session token, --auth off], each with a task to read; undefined without auth. */
async function freshPair(n: number, started: ServerProcess[]): Promise<[Side, Side] | undefined> {
  const withToken = await startGateway({ auth: true });
  started.push(withToken);
  const open = await startGateway({ auth: false });
  started.push(open);
  if (!withToken.token) return undefined;
  return [
    await side(withToken, `gateway pair ${n} (session token)`),
    await side(open, `gateway pair ${n} (--auth off)`),
  ];
}

/** Measures every protocol; `rounds` measured runs per side and protocol, on fresh pairs. */
export async function measureAuthCost(
  protocols: readonly Protocol[],
  rounds = steadyRounds,
): Promise<AuthCostRow[]> {
  const started: ServerProcess[] = [];
  const stopStarted = async () => {
    await Promise.all(started.splice(0).map((gw) => gw.stop()));
  };
  try {
    const rows: AuthCostRow[] = [];
    for (const protocol of protocols) {
      note(`auth cost: ${protocolLabel[protocol]}…`);
      const token: SteadyRun[] = [];
      const off: SteadyRun[] = [];
      let pair: [Side, Side] | undefined;
      for (let r = 0; r < rounds; r++) {
        if (r % roundsPerPair === 0) {
          await stopStarted();
          pair = await freshPair(r / roundsPerPair + 1, started);
          if (!pair) {
            note("auth cost: this gateway has no authentication; skipped");
            return [];
          }
          for (const s of pair) await sampleSide(s, protocol);
        }
        const [t, o] = pair as [Side, Side];
        // A B, then B A on the same pair: whatever drifts during the runs weighs on both alike.
        if (r % 2 === 0) {
          token.push(await load(t, protocol));
          off.push(await load(o, protocol));
        } else {
          off.push(await load(o, protocol));
          token.push(await load(t, protocol));
        }
        if (r % roundsPerPair === roundsPerPair - 1)
          for (const s of pair as [Side, Side]) await sampleSide(s, protocol);
      }
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
    await stopStarted();
  }
}

/** The section of BENCHMARKS.md. */
export function renderAuthCost(rows: readonly AuthCostRow[]): string[] {
  if (rows.length === 0) return [];
  const int = (n: number) => Math.round(n).toLocaleString("en-US");
  return [
    `### Cost of authentication (GetTaskStatus, 256 in flight, a fresh pair of gateways every ${roundsPerPair} rounds, h2load runs of ${steadySeconds} s after a ${warmUpSeconds} s warm-up)`,
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
