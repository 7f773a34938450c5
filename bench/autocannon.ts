/**
 * HTTP/1.1 load (Connect JSON, gRPC-Web) with autocannon, run in this process (pinned to the load
 * core). Latencies are taken from every response, unrounded, since autocannon's own histogram keeps
 * whole milliseconds.
 *
 * autocannon opens all its connections at once and sends on each as soon as it is up. Node accepts
 * one connection per event-loop turn, and a turn of a saturated server takes as long as the calls it
 * serves, so the connections of a run come in over up to seconds: the ramp. Throughput and latency
 * are taken from the steady part, after every connection has had its first answer; the ramp is
 * reported apart. Counts (for the exact checks) still cover the whole run.
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
  /** Stops the run this many seconds after the ramp ended (or at durationS, whichever is first). */
  readonly steadySeconds?: number;
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
  /** Calls per second, p50 and p99 of the steady part (the whole run if it never got there). */
  readonly callsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Seconds until every connection had its first answer (NaN when some never did). */
  readonly rampSeconds: number;
  /** Calls completed during the ramp, and in the steady part. */
  readonly rampCalls: number;
  readonly steadyCalls: number;
  /** CPU seconds this process (autocannon) used during the run. */
  readonly cpuSeconds: number;
}

/** Runs autocannon and collects every response's latency. */
export async function runAutocannon(run: AutocannonRun): Promise<AutocannonResult> {
  const latencies: number[] = [];
  const steadyLatencies: number[] = [];
  let status2xx = 0;
  let lastResponse = 0;
  const answered = new Set<unknown>();
  let rampEnd = 0;
  let rampCalls = 0;
  let calls = 0;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const options: autocannon.Options = {
    url: run.url,
    method: "POST",
    headers: run.request.headers,
    body: run.request.body,
    connections: run.connections,
    // A connection's first call can wait out a long ramp (reported apart); a call that takes longer
    // than this still counts as a timeout.
    timeout: 60,
    ...(run.requests !== undefined ? { amount: run.requests } : { duration: run.durationS ?? 5 }),
    ...(run.verifyBody ? { verifyBody: run.verifyBody as (body: unknown) => boolean } : {}),
  };
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (err, res) => (err ? reject(err) : resolve(res)));
    instance.on("response", (client, statusCode, _bytes, responseTime) => {
      lastResponse = performance.now();
      calls++;
      if (statusCode >= 200 && statusCode < 300) {
        status2xx++;
        latencies.push(responseTime);
        if (rampEnd > 0) steadyLatencies.push(responseTime);
      }
      if (rampEnd === 0) {
        answered.add(client);
        if (answered.size < run.connections) return;
        rampEnd = lastResponse;
        rampCalls = calls;
        if (run.steadySeconds !== undefined) {
          setTimeout(() => instance.stop(), run.steadySeconds * 1000).unref();
        }
      }
    });
  });
  const cpu = process.cpuUsage(cpu0);
  const seconds = ((lastResponse || performance.now()) - started) / 1000;
  const steady = rampEnd > 0 && calls > rampCalls;
  const steadySeconds = steady ? (lastResponse - rampEnd) / 1000 : seconds;
  const steadyCalls = steady ? calls - rampCalls : result.requests.total;
  const { p50, p99 } = p50p99(steady ? steadyLatencies : latencies);
  return {
    seconds,
    sent: result.requests.sent,
    completed: result.requests.total,
    status2xx,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    mismatches: result.mismatches,
    callsPerSec: steadyCalls / steadySeconds,
    p50Ms: p50,
    p99Ms: p99,
    rampSeconds: rampEnd > 0 ? (rampEnd - started) / 1000 : Number.NaN,
    rampCalls,
    steadyCalls,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}
