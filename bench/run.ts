/**
 * `npm run bench`: measures the gateway per protocol, with its fast path and with stock Connect,
 * against reference peers and raw floors, checks every answer, prints Markdown tables and writes them
 * into BENCHMARKS.md. Exits 1 when a check fails, 2 when h2load is missing.
 */
import { type AuthCostRow, measureAuthCost, renderAuthCost } from "./auth-cost.js";
import { fail, failuresSoFar, note } from "./checks.js";
import { type DashboardResult, measureDashboard, renderDashboard } from "./dashboard.js";
import { type DispatchResult, measureDispatch, renderDispatch } from "./dispatch.js";
import { type FanOutResult, measureFanOut } from "./fan-out.js";
import { type FirstEventResult, measureFirstEvent } from "./first-event.js";
import { checkFloors } from "./floors.js";
import { loadCore, machineBusySeconds, pinSelf, stopAll, withGateway } from "./gateway.js";
import { h2loadAvailable, h2loadMissing } from "./h2load.js";
import { type MemoryResult, measureMemory } from "./memory.js";
import { measurePostgres, type PostgresResult, renderPostgres } from "./postgres.js";
import type { Protocol } from "./protocols.js";
import { describeMachine, renderResults, writeBenchmarksMd } from "./report.js";
import { measureTracingCost, renderTracingCost, type TracingCostRow } from "./tracing-cost.js";
import type { UnaryRow } from "./unary.js";
import { measureUnaryPhase } from "./unary-phase.js";
import { measureStreaming, type StreamingResult } from "./watchers.js";
import { measureWorkflows, renderWorkflows, type WorkflowResult } from "./workflows.js";
import { measureWritePath, renderWritePath, type WritePathRow } from "./write-path.js";

const protocols: readonly Protocol[] = ["grpc", "grpc-web", "connect-json"];
/** Submits per second while 100 watchers listen (x100 events/s offered): a light and a heavy load. */
const streamingRates = [50, 200];

async function main(): Promise<number> {
  if (!h2loadAvailable()) {
    process.stderr.write(`${h2loadMissing}\n`);
    return 2;
  }
  const started = Date.now();
  // Read before pinning: nproc counts only the cores this process may use.
  const machine = describeMachine();
  const pinned = pinSelf(loadCore);
  const busy0 = machineBusySeconds();
  await new Promise((r) => setTimeout(r, 1000));
  const busy = machineBusySeconds() - busy0;
  if (busy > 0.2) {
    note(
      `WARNING: other processes keep ${Math.round(busy * 100)} % of a core busy; figures will be disturbed (see "other CPU")`,
    );
  }
  if (!pinned) note("taskset not found: servers and load tools are not pinned to separate cores");

  let unary: UnaryRow[] = [];
  let storeKind = "unknown";
  const streaming: StreamingResult[] = [];
  let memory: MemoryResult | undefined;
  // Each phase on its own gateway; one that breaks is reported and the others still run.
  const phase = async (name: string, body: () => Promise<void>) => {
    try {
      await body();
    } catch (err) {
      fail(`${name} aborted: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    } finally {
      await stopAll();
    }
  };
  await phase("unary calls", async () => {
    ({ rows: unary, storeKind } = await measureUnaryPhase(protocols));
  });
  checkFloors(unary);
  let writePath: WritePathRow[] = [];
  await phase("write path", async () => {
    writePath = await measureWritePath(protocols);
  });
  for (const submitRate of streamingRates) {
    const opts = { watchers: 100, sessions: 4, submitRate, seconds: 5 };
    await phase(`streaming at ${submitRate} submits/s`, async () => {
      streaming.push(await withGateway((gw) => measureStreaming(gw, opts)));
    });
  }
  let firstEvent: FirstEventResult | undefined;
  await phase("first event", async () => {
    firstEvent = await withGateway((gw) => measureFirstEvent(gw));
  });
  let fanOut: FanOutResult | undefined;
  await phase("fan-out", async () => {
    fanOut = await measureFanOut();
  });
  await phase("memory", async () => {
    memory = await withGateway((gw) => measureMemory(gw));
  });
  let authCost: AuthCostRow[] = [];
  await phase("auth cost", async () => {
    authCost = await measureAuthCost(protocols);
  });
  let tracingCost: TracingCostRow[] = [];
  await phase("tracing cost", async () => {
    tracingCost = await measureTracingCost(protocols);
  });
  let dispatch: DispatchResult | undefined;
  await phase("dispatch", async () => {
    dispatch = await withGateway((gw) => measureDispatch(gw));
  });
  let workflows: WorkflowResult | undefined;
  await phase("workflows", async () => {
    workflows = await withGateway((gw) => measureWorkflows(gw));
  });
  let postgres: PostgresResult | undefined;
  await phase("PostgreSQL", async () => {
    postgres = await measurePostgres();
  });
  let dashboard: DashboardResult | undefined;
  await phase("dashboard", async () => {
    // Its own gateway: the dashboard must be built before the gateway starts.
    dashboard = await measureDashboard();
  });

  const results0 = renderResults({
    date: new Date(),
    machine,
    storeKind,
    pinned,
    unary,
    streaming,
    firstEvent,
    fanOut,
    memory,
    failures: failuresSoFar(),
    seconds: (Date.now() - started) / 1000,
  });
  const sections = [
    results0,
    renderWritePath(writePath).join("\n"),
    renderAuthCost(authCost).join("\n"),
    renderTracingCost(tracingCost).join("\n"),
    dispatch ? renderDispatch(dispatch).join("\n") : "",
    workflows ? renderWorkflows(workflows).join("\n") : "",
    postgres ? renderPostgres(postgres).join("\n") : "",
    dashboard ? renderDashboard(dashboard).join("\n") : "",
  ];
  const results = sections.filter((x) => x !== "").join("\n");
  process.stdout.write(`\n${results}\n`);
  const path = writeBenchmarksMd(results);
  note(`wrote ${path}`);
  const failures = failuresSoFar().length;
  if (failures > 0) process.stdout.write(`FAIL: ${failures} check(s) failed\n`);
  return failures > 0 ? 1 : 0;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    stopAll().finally(() => process.exit(130));
  });
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    process.stdout.write(`FAIL: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await stopAll();
    process.exit(1);
  },
);
