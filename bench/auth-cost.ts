/**
 * What authentication costs: GetTaskStatus at 256 in flight on fresh pairs of gateways, one with
 * authentication on (every call carries a session token, checked against the store, then scope and
 * rate limits) and one with `--auth off`, loaded in alternating quarter-second slices
 * (interleaved-load.ts) so both run under the same drift of the machine's speed.
 * Target: the token's calls per CPU-second at least 90 % of the open gateway's.
 */
import { check, note } from "./checks.js";
import { type ServerProcess, startGateway } from "./gateway.js";
import { busySeconds, type Side, side, target } from "./gateway-pair.js";
import { runH2load } from "./h2load.js";
import { interleavedRun, type SliceRun, sliceMs } from "./interleaved-load.js";
import { apiClient, type Protocol, protocolLabel } from "./protocols.js";
import { loadOf, mean, median } from "./steady-load.js";
import { sample } from "./unary.js";

/** Least share of the open gateway's calls/s the authenticated one must reach. */
export const authTarget = 0.9;

/** One protocol's figures. */
export interface AuthCostRow {
  readonly protocol: Protocol;
  /** Mean calls/s in the side's own slices. */
  readonly openCallsPerSec: number;
  readonly tokenCallsPerSec: number;
  /** Mean server CPU per call, in microseconds (from /proc, over the interleaved runs). */
  readonly openCpuUsPerCall: number;
  readonly tokenCpuUsPerCall: number;
  /** Median over pairs of the token's calls per CPU-second ÷ the open gateway's. */
  readonly ratio: number;
  readonly pairs: number;
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

/** Two seconds of the same load on one side, so it is compiled and warm before it is measured. */
async function warmUp(s: Side, protocol: Protocol): Promise<void> {
  await runH2load({ ...loadOf(target(s), protocol, "GetTaskStatus", s.taskId), durationS: 2 });
}

/**
 * Fresh pairs of gateways measured per protocol. Two identical Node processes can differ by a few
 * percent for their whole life, so no one process may decide the check: each pair gives one ratio,
 * and the check is on their median.
 */
export const authPairs = 5;

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

/** Measures every protocol on `pairs` fresh pairs of gateways each. */
export async function measureAuthCost(
  protocols: readonly Protocol[],
  pairs = authPairs,
): Promise<AuthCostRow[]> {
  const started: ServerProcess[] = [];
  const stopStarted = async () => {
    await Promise.all(started.splice(0).map((gw) => gw.stop()));
  };
  try {
    const rows: AuthCostRow[] = [];
    for (const protocol of protocols) {
      note(`auth cost: ${protocolLabel[protocol]}…`);
      const token: SliceRun[] = [];
      const off: SliceRun[] = [];
      for (let n = 1; n <= pairs; n++) {
        await stopStarted();
        const pair = await freshPair(n, started);
        if (!pair) {
          note("auth cost: this gateway has no authentication; skipped");
          return [];
        }
        for (const s of pair) await sampleSide(s, protocol);
        for (const s of pair) await warmUp(s, protocol);
        // Which side takes the first slice alternates from pair to pair.
        const [first, second] = n % 2 === 1 ? pair : ([pair[1], pair[0]] as const);
        const runs = await interleavedRun(
          [target(first), target(second)],
          [first.taskId, second.taskId],
          protocol,
          "GetTaskStatus",
          busySeconds,
        );
        const [t, o] = n % 2 === 1 ? runs : [runs[1], runs[0]];
        token.push(t);
        off.push(o);
        for (const s of pair) await sampleSide(s, protocol);
      }
      const row: AuthCostRow = {
        protocol,
        tokenCallsPerSec: mean(token.map((x) => x.callsPerSec)),
        openCallsPerSec: mean(off.map((x) => x.callsPerSec)),
        tokenCpuUsPerCall: mean(token.map((x) => x.cpuUsPerCall)),
        openCpuUsPerCall: mean(off.map((x) => x.cpuUsPerCall)),
        ratio: median(token.map((t, i) => (off[i]?.cpuUsPerCall ?? Number.NaN) / t.cpuUsPerCall)),
        pairs,
      };
      check(
        row.ratio >= authTarget,
        `${protocolLabel[protocol]}: GetTaskStatus with a session token reaches ${Math.round(row.ratio * 100)} % of the calls per CPU-second with --auth off (median of ${pairs} pairs), under the ${Math.round(authTarget * 100)} % target`,
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
  const pct = (n: number) => `${Math.round(n * 100)} %`;
  return [
    `### Cost of authentication (GetTaskStatus, 256 in flight, ${rows[0]?.pairs} fresh pairs of gateways per protocol, each gateway loaded ${busySeconds} s in alternating slices of ${sliceMs} ms)`,
    "",
    `| Protocol | server CPU µs per call, --auth off (mean) | server CPU µs per call, session token (mean) | token ÷ off in calls per CPU-second, median of pairs (target ≥ ${pct(authTarget)}) | same, from the means | calls/s in own slices, off / token (mean) |`,
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map(
      (r) =>
        `| ${protocolLabel[r.protocol]} | ${r.openCpuUsPerCall.toFixed(1)} | ${r.tokenCpuUsPerCall.toFixed(1)} | ${pct(r.ratio)} | ${pct(r.openCpuUsPerCall / r.tokenCpuUsPerCall)} | ${int(r.openCallsPerSec)} / ${int(r.tokenCallsPerSec)} |`,
    ),
    "",
  ];
}
