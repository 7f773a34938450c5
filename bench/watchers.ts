/**
 * Streaming: 100 WatchEvents streams (request `{}`) over a few HTTP/2 sessions, while another client
 * submits tasks at a steady rate; each submit yields one `task.submitted` event per watcher. Reports
 * events delivered per second (all watchers) and the delivery latency, from the submit's send time to
 * a watcher's receipt, both taken on this process's clock.
 */
import { setMaxListeners } from "node:events";
import { performance } from "node:perf_hooks";
import { check, note } from "./checks.js";
import { cpuSeconds, machineBusySeconds, type ServerProcess } from "./gateway.js";
import { type ApiClient, apiClient } from "./protocols.js";
import { p50p99 } from "./stats.js";

export interface StreamingResult {
  readonly watchers: number;
  readonly sessions: number;
  readonly submitRate: number;
  readonly seconds: number;
  readonly submitted: number;
  readonly delivered: number;
  readonly eventsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** p99 of the part after the gateway stamped the event (its `timestamp`) until a watcher got it. */
  readonly p99FromStampMs: number;
  /** Share of one core the gateway and this process (watchers and submitter) used while submitting. */
  readonly gatewayCpu: number;
  readonly clientCpu: number;
  /** Share of a core used by other processes on the machine meanwhile. */
  readonly otherCpu: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the streaming measurement against a gateway with an empty event log. */
export async function measureStreaming(
  gateway: ServerProcess,
  opts = { watchers: 100, sessions: 4, submitRate: 200, seconds: 5 },
): Promise<StreamingResult> {
  const baseUrl = gateway.baseUrl;
  note(`streaming: ${opts.watchers} watchers, ${opts.submitRate} submits/s for ${opts.seconds} s…`);
  const sessions: ApiClient[] = Array.from({ length: opts.sessions }, () =>
    apiClient("grpc", baseUrl, gateway.token),
  );
  const submitter = apiClient("grpc", baseUrl, gateway.token);
  const abort = new AbortController();
  setMaxListeners(opts.watchers + 10, abort.signal);
  const sent = new Map<string, number>();
  const latencies: number[] = [];
  const fromStamp: number[] = [];
  const seen: Set<string>[] = [];
  const streamErrors: string[] = [];
  let delivered = 0;
  let lastDelivery = 0;

  const watch = async (client: ApiClient, mine: Set<string>) => {
    try {
      for await (const ev of client.api.watchEvents({}, { signal: abort.signal })) {
        const at = performance.now();
        if (ev.type !== "task.submitted") continue;
        mine.add(ev.taskId);
        const t0 = sent.get(ev.taskId);
        if (t0 === undefined) continue;
        delivered++;
        lastDelivery = at;
        latencies.push(at - t0);
        if (ev.timestamp) {
          const stampMs = Number(ev.timestamp.seconds) * 1000 + ev.timestamp.nanos / 1e6;
          fromStamp.push(performance.timeOrigin + at - stampMs);
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) streamErrors.push(err instanceof Error ? err.message : String(err));
    }
  };
  const running: Promise<void>[] = [];
  for (let i = 0; i < opts.watchers; i++) {
    const mine = new Set<string>();
    seen.push(mine);
    running.push(watch(sessions[i % sessions.length] as ApiClient, mine));
  }

  try {
    // A probe task proves every stream is live before the clock starts.
    const probe = `probe-${Date.now()}`;
    await submitter.api.submitTask({ taskId: probe, type: "bench" });
    const ready = Date.now() + 15_000;
    while (seen.some((s) => !s.has(probe)) && Date.now() < ready && streamErrors.length === 0)
      await sleep(20);
    if (
      !check(
        seen.every((s) => s.has(probe)),
        `streaming: not all ${opts.watchers} watchers got the probe event`,
      )
    ) {
      throw new Error(`watchers not live: ${streamErrors[0] ?? "timeout"}`);
    }

    const submits: Promise<unknown>[] = [];
    let failedSubmits = 0;
    const started = performance.now();
    const gatewayCpu0 = cpuSeconds(gateway.pid);
    const clientCpu0 = process.cpuUsage();
    const machine0 = machineBusySeconds();
    const total = Math.round(opts.submitRate * opts.seconds);
    let n = 0;
    while (n < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * opts.submitRate) + 1);
      for (; n < due; n++) {
        const taskId = `stream-${n}`;
        sent.set(taskId, performance.now());
        submits.push(
          submitter.api.submitTask({ taskId, type: "bench" }).catch(() => {
            failedSubmits++;
          }),
        );
      }
      await sleep(2);
    }
    await Promise.all(submits);
    const want = total * opts.watchers;
    const drain = Date.now() + 10_000;
    while (delivered < want && Date.now() < drain && streamErrors.length === 0) await sleep(20);
    const seconds = (lastDelivery - started) / 1000;
    const wall = (performance.now() - started) / 1000;
    const clientCpu = process.cpuUsage(clientCpu0);
    const gatewaySeconds = cpuSeconds(gateway.pid) - gatewayCpu0;
    const clientSeconds = (clientCpu.user + clientCpu.system) / 1e6;
    const otherSeconds = machineBusySeconds() - machine0 - gatewaySeconds - clientSeconds;
    check(failedSubmits === 0, `streaming: ${failedSubmits} of ${total} submits failed`);
    check(
      streamErrors.length === 0,
      `streaming: ${streamErrors.length} watch streams failed: ${streamErrors[0]}`,
    );
    check(
      delivered === want,
      `streaming: ${delivered} events delivered, want ${want} (${total} x ${opts.watchers})`,
    );
    const { p50, p99 } = p50p99(latencies);
    return {
      watchers: opts.watchers,
      sessions: opts.sessions,
      submitRate: opts.submitRate,
      seconds,
      submitted: total,
      delivered,
      eventsPerSec: delivered / seconds,
      p50Ms: p50,
      p99Ms: p99,
      p99FromStampMs: p50p99(fromStamp).p99,
      gatewayCpu: gatewaySeconds / wall,
      clientCpu: clientSeconds / wall,
      otherCpu: Math.max(0, otherSeconds) / wall,
    };
  } finally {
    abort.abort();
    await Promise.allSettled(running);
    for (const s of sessions) s.close();
    submitter.close();
  }
}
