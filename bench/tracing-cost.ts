/**
 * What tracing costs: unary calls at 256 in flight on fresh pairs of gateways, one tracing (with
 * `--otel-endpoint` to an in-process OTLP sink: one RPC span per call, plus a store transaction span
 * per SubmitTask batch) and one as it ships (tracing off), loaded in alternating quarter-second
 * slices (interleaved-load.ts) so both run under the same drift of the machine's speed. The cost per
 * call is the difference in server CPU per call. The tracing side's spans are counted at the sink
 * after a flush, so a gateway that dropped spans to keep up would show.
 *
 * Alone: `npx tsx bench/tracing-cost.ts` prints the section (SPAGE_BENCH_TRACING_PAIRS, default 3).
 */
import { pathToFileURL } from "node:url";
import { failuresSoFar, note } from "./checks.js";
import { loadCore, pinSelf, type ServerProcess, startGateway, stopAll } from "./gateway.js";
import { busySeconds, type Side, side, target } from "./gateway-pair.js";
import { runH2load } from "./h2load.js";
import { interleavedRun, type SliceRun, sliceMs } from "./interleaved-load.js";
import { type OtlpSink, startOtlpSink } from "./otlp-sink.js";
import { apiClient, type Method, type Protocol, protocolLabel } from "./protocols.js";
import { loadOf, mean, median } from "./steady-load.js";
import { sample } from "./unary.js";

/** One protocol and call's figures. */
export interface TracingCostRow {
  readonly protocol: Protocol;
  readonly method: Method;
  /** Mean calls/s in the side's own slices. */
  readonly offCallsPerSec: number;
  readonly onCallsPerSec: number;
  /** Mean server CPU per call, in microseconds. */
  readonly offCpuUsPerCall: number;
  readonly onCpuUsPerCall: number;
  /** Median over pairs of the traced side's CPU per call minus the untraced side's. */
  readonly costUsPerCall: number;
  /** Spans the sink received ÷ calls the traced side completed (≥ 1: none dropped). */
  readonly spansPerCall: number;
  readonly pairs: number;
}

/** Fresh pairs per protocol and call. */
export const tracingPairs = Number(process.env.SPAGE_BENCH_TRACING_PAIRS || 3);

/** Waits until the sink's count stops growing (the gateway's batches are all in), bounded. */
async function settledSpans(sink: OtlpSink): Promise<number> {
  let last = -1;
  for (let i = 0; i < 40 && sink.spans() !== last; i++) {
    last = sink.spans();
    // The batch processor sends every 5 s or every 512 spans.
    await new Promise((r) => setTimeout(r, i === 0 ? 6000 : 500));
  }
  return sink.spans();
}

/** Measures every protocol and call on `pairs` fresh pairs of gateways each. */
export async function measureTracingCost(
  protocols: readonly Protocol[],
  methods: readonly Method[] = ["GetTaskStatus", "SubmitTask"],
  pairs = tracingPairs,
): Promise<TracingCostRow[]> {
  const sink = await startOtlpSink();
  const started: ServerProcess[] = [];
  const stopStarted = async () => {
    await Promise.all(started.splice(0).map((gw) => gw.stop()));
  };
  try {
    const rows: TracingCostRow[] = [];
    for (const method of methods) {
      for (const protocol of protocols) {
        note(`tracing cost: ${protocolLabel[protocol]} ${method}…`);
        const on: SliceRun[] = [];
        const off: SliceRun[] = [];
        const costs: number[] = [];
        let spans = 0;
        let tracedCalls = 0;
        for (let n = 1; n <= pairs; n++) {
          await stopStarted();
          const traced = await startGateway({ extraArgs: ["--otel-endpoint", sink.url] });
          started.push(traced);
          const plain = await startGateway();
          started.push(plain);
          const pair = [
            await side(traced, `pair ${n} (tracing on)`),
            await side(plain, `pair ${n} (tracing off)`),
          ];
          for (const s of pair) {
            const client = apiClient(protocol, s.gw.baseUrl, s.gw.token);
            try {
              await sample(client, `${s.label} ${protocolLabel[protocol]}`, "GetTaskStatus", s.taskId, 20);
            } finally {
              client.close();
            }
            await runH2load({ ...loadOf(target(s), protocol, method, s.taskId), durationS: 2 });
          }
          // Spans of the warm-up are sent before the measured slices start counting.
          const before = await settledSpans(sink);
          const [first, second] = n % 2 === 1 ? pair : [pair[1], pair[0]];
          const runs = await interleavedRun(
            [target(first as Side), target(second as Side)],
            [(first as Side).taskId, (second as Side).taskId],
            protocol,
            method,
            busySeconds,
          );
          const [t, o] = n % 2 === 1 ? runs : [runs[1], runs[0]];
          on.push(t);
          off.push(o);
          costs.push(t.cpuUsPerCall - o.cpuUsPerCall);
          spans += (await settledSpans(sink)) - before;
          tracedCalls += t.done;
        }
        rows.push({
          protocol,
          method,
          onCallsPerSec: mean(on.map((x) => x.callsPerSec)),
          offCallsPerSec: mean(off.map((x) => x.callsPerSec)),
          onCpuUsPerCall: mean(on.map((x) => x.cpuUsPerCall)),
          offCpuUsPerCall: mean(off.map((x) => x.cpuUsPerCall)),
          costUsPerCall: median(costs),
          spansPerCall: spans / Math.max(1, tracedCalls),
          pairs,
        });
      }
    }
    return rows;
  } finally {
    await stopStarted();
    await sink.close();
  }
}

/** The section of BENCHMARKS.md. */
export function renderTracingCost(rows: readonly TracingCostRow[]): string[] {
  if (rows.length === 0) return [];
  const int = (n: number) => Math.round(n).toLocaleString("en-US");
  return [
    `### Cost of tracing (256 in flight, ${rows[0]?.pairs} fresh pairs of gateways per row, each gateway loaded ${busySeconds} s in alternating slices of ${sliceMs} ms)`,
    "",
    "Tracing on: `--otel-endpoint` to an OTLP/HTTP sink in the bench process (JSON, batch span processor defaults).",
    "",
    "| Protocol | Call | server CPU µs per call, off / on (mean) | tracing cost, µs per call (median of pairs) | calls/s in own slices, off / on (mean) | spans received per traced call |",
    "| --- | --- | ---: | ---: | ---: | ---: |",
    ...rows.map(
      (r) =>
        `| ${protocolLabel[r.protocol]} | ${r.method} | ${r.offCpuUsPerCall.toFixed(1)} / ${r.onCpuUsPerCall.toFixed(1)} | ${r.costUsPerCall.toFixed(1)} | ${int(r.offCallsPerSec)} / ${int(r.onCallsPerSec)} | ${r.spansPerCall.toFixed(2)} |`,
    ),
    "",
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!pinSelf(loadCore)) note("taskset not found: servers and load tools are not pinned to separate cores");
  measureTracingCost(["grpc", "grpc-web", "connect-json"])
    .then((rows) => {
      process.stdout.write(`${renderTracingCost(rows).join("\n")}\n`);
      for (const f of failuresSoFar()) process.stdout.write(`FAIL: ${f}\n`);
      process.exitCode = failuresSoFar().length > 0 ? 1 : 0;
    })
    .catch(async (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      await stopAll();
      process.exitCode = 1;
    });
}
