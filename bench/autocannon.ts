/**
 * HTTP/1.1 load (Connect JSON, gRPC-Web) with autocannon, run in this process (pinned to the load
 * core). Latencies are taken from every response, unrounded, since autocannon's own histogram keeps
 * whole milliseconds.
 */
import { performance } from "node:perf_hooks";
import autocannon from "autocannon";
import type { RawRequest } from "./protocols.js";
import { p50p99 } from "./stats.js";

/** One autocannon run: either for a duration or a fixed number of requests. */
export interface AutocannonRun {
  readonly url: string;
  readonly request: RawRequest;
  readonly connections: number;
  readonly durationS?: number;
  readonly requests?: number;
  /** Checks each response body; a false answer counts as a mismatch. */
  readonly verifyBody?: (body: string) => boolean;
}

/** What autocannon reported. */
export interface AutocannonResult {
  readonly seconds: number;
  readonly sent: number;
  readonly completed: number;
  readonly status2xx: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly mismatches: number;
  readonly callsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU seconds this process (autocannon) used during the run. */
  readonly cpuSeconds: number;
}

/** Runs autocannon and collects every response's latency. */
export async function runAutocannon(run: AutocannonRun): Promise<AutocannonResult> {
  const latencies: number[] = [];
  let status2xx = 0;
  let lastResponse = 0;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const options: autocannon.Options = {
    url: run.url,
    method: "POST",
    headers: run.request.headers,
    body: run.request.body,
    connections: run.connections,
    ...(run.requests !== undefined ? { amount: run.requests } : { duration: run.durationS ?? 5 }),
    ...(run.verifyBody ? { verifyBody: run.verifyBody as (body: unknown) => boolean } : {}),
  };
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (err, res) => (err ? reject(err) : resolve(res)));
    instance.on("response", (_client, statusCode, _bytes, responseTime) => {
      lastResponse = performance.now();
      if (statusCode >= 200 && statusCode < 300) {
        status2xx++;
        latencies.push(responseTime);
      }
    });
  });
  const cpu = process.cpuUsage(cpu0);
  const { p50, p99 } = p50p99(latencies);
  const seconds = ((lastResponse || performance.now()) - started) / 1000;
  return {
    seconds,
    sent: result.requests.sent,
    completed: result.requests.total,
    status2xx,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    mismatches: result.mismatches,
    callsPerSec: result.requests.total / seconds,
    p50Ms: p50,
    p99Ms: p99,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}
