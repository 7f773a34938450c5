/**
 * What authentication costs: GetTaskStatus at 256 in flight on two fresh gateways side by side, one
 * with authentication on (every call carries a session token, checked against the store, then
 * scope and rate limits) and one with `--auth off`, measured in alternation per protocol.
 * Target: the token's calls/s at least 90 % of the open gateway's.
 */
import { check, note } from "./checks.js";
import { type ServerProcess, startGateway } from "./gateway.js";
import { apiClient, benchTaskType, type Protocol, protocolLabel } from "./protocols.js";
import { measureAlternating, type UnaryTarget } from "./unary.js";

/** Least share of the open gateway's calls/s the authenticated one must reach. */
export const authTarget = 0.9;

/** One protocol's figures. */
export interface AuthCostRow {
  readonly protocol: Protocol;
  /** Mean calls/s over the alternating runs. */
  readonly openCallsPerSec: number;
  readonly tokenCallsPerSec: number;
  readonly runs: number;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function target(gw: ServerProcess, server: string): Promise<{ target: UnaryTarget; taskId: string }> {
  const client = apiClient("grpc", gw.baseUrl, gw.token);
  try {
    const { taskId } = await client.api.submitTask({
      type: benchTaskType,
      payload: { playbook: "site.yml" },
    });
    return { target: { server, baseUrl: gw.baseUrl, pid: gw.pid, full: false, token: gw.token }, taskId };
  } finally {
    client.close();
  }
}

/** Measures every protocol; `rounds` measured runs per gateway and protocol. */
export async function measureAuthCost(protocols: readonly Protocol[], rounds = 2): Promise<AuthCostRow[]> {
  const withToken = await startGateway({ auth: true });
  let open: ServerProcess | undefined;
  try {
    open = await startGateway({ auth: false });
    if (!withToken.token) {
      note("auth cost: this gateway has no authentication; skipped");
      return [];
    }
    const targets = [
      await target(withToken, "gateway (session token)"),
      await target(open, "gateway (--auth off)"),
    ];
    const rows: AuthCostRow[] = [];
    for (const protocol of protocols) {
      const [tokenRuns = [], openRuns = []] = await measureAlternating(
        targets,
        protocol,
        "GetTaskStatus",
        rounds,
      );
      const row = {
        protocol,
        openCallsPerSec: mean(openRuns),
        tokenCallsPerSec: mean(tokenRuns),
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
    "### Cost of authentication (GetTaskStatus, 256 in flight)",
    "",
    `| Protocol | calls/s with --auth off | calls/s with a session token | token ÷ off (target ≥ ${Math.round(authTarget * 100)} %) | runs each |`,
    "| --- | ---: | ---: | ---: | ---: |",
    ...rows.map(
      (r) =>
        `| ${protocolLabel[r.protocol]} | ${int(r.openCallsPerSec)} | ${int(r.tokenCallsPerSec)} | ${Math.round((r.tokenCallsPerSec / r.openCallsPerSec) * 100)} % | ${r.runs} |`,
    ),
    "",
  ];
}
