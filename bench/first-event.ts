/**
 * First event on new streams: 100 WatchEvents streams opened at once over 4 HTTP/2 connections
 * (after_sequence = the log's current end, so nothing is replayed); once the gateway counts all of
 * them subscribed (GetMetrics `watchers_connected`), one SubmitTask is sent, and each stream's first
 * event is timed from that send. A first round, not reported, warms the gateway up; the measured
 * round opens new streams on new connections. Target: every first event within 100 ms.
 */
import { performance } from "node:perf_hooks";
import { check, note } from "./checks.js";
import { cpuSeconds, machineBusySeconds, type ServerProcess } from "./gateway.js";
import { type ApiClient, apiClient, benchTaskType } from "./protocols.js";
import { quantile } from "./stats.js";
import { openWatchStreams, waitFor } from "./watch-streams.js";

/** Every stream's first event must come within this many ms of the submit's send. */
export const firstEventTargetMs = 100;

/** What the measured round gave. */
export interface FirstEventResult {
  readonly watchers: number;
  readonly sessions: number;
  /** From opening the streams until the gateway counted them all subscribed (polled every 10 ms). */
  readonly openMs: number;
  /** The SubmitTask call's own duration. */
  readonly submitMs: number;
  /** Streams whose first event was the submitted task's `task.submitted`. */
  readonly received: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Share of a core used by other processes during the round. */
  readonly otherCpu: number;
}

async function subscribers(client: ApiClient): Promise<number> {
  const m = await client.api.getMetrics({});
  return m.gauges.watchers_connected ?? Number.NaN;
}

interface RoundResult {
  readonly openMs: number;
  readonly submitMs: number;
  readonly received: number;
  /** Send-to-first-event times of the streams that got one, sorted. */
  readonly latencies: Float64Array;
  readonly errors: readonly string[];
  readonly wrong: readonly string[];
  readonly otherCpu: number;
}

/** Opens the streams, sends the submit, times each stream's first event, closes the streams. */
async function round(
  gw: ServerProcess,
  label: string,
  watchers: number,
  sessions: number,
): Promise<RoundResult> {
  const control = apiClient("grpc", gw.baseUrl, gw.token);
  const taskId = `first-event-${label}-${Date.now()}`;
  const first = new Float64Array(watchers).fill(Number.NaN);
  const wrong: string[] = [];
  try {
    const afterSequence = (await control.api.listTasks({ limit: 1 })).sequence;
    const before = await subscribers(control);
    const machine0 = machineBusySeconds();
    const gateway0 = cpuSeconds(gw.pid);
    const bench0 = process.cpuUsage();
    const opened = performance.now();
    const streams = openWatchStreams(
      { baseUrl: gw.baseUrl, token: gw.token, watchers, sessions, afterSequence },
      (i, ev, at) => {
        if (!Number.isNaN(first[i] as number)) return;
        first[i] = at;
        if (ev.taskId !== taskId || ev.type !== "task.submitted") wrong.push(`${ev.type} of ${ev.taskId}`);
      },
    );
    let result: RoundResult;
    try {
      const failed = () => streams.errors.length > 0;
      const open = await waitFor(
        async () => (await subscribers(control)) >= before + watchers,
        15_000,
        failed,
      );
      const openMs = performance.now() - opened;
      if (!open) {
        throw new Error(
          `first event: the gateway did not count ${watchers} new watchers within 15 s: ${streams.errors[0] ?? "timeout"}`,
        );
      }
      const sent = performance.now();
      await control.api.submitTask({ taskId, type: benchTaskType });
      const submitMs = performance.now() - sent;
      await waitFor(() => first.every((t) => !Number.isNaN(t)), 5_000, failed);
      const wall = (performance.now() - opened) / 1000;
      const bench = process.cpuUsage(bench0);
      const ours = cpuSeconds(gw.pid) - gateway0 + (bench.user + bench.system) / 1e6;
      const otherCpu = Math.max(0, machineBusySeconds() - machine0 - ours) / wall;
      const got = first.filter((t) => !Number.isNaN(t));
      const latencies = Float64Array.from(got, (t) => t - sent).sort();
      result = {
        openMs,
        submitMs,
        received: got.length - wrong.length,
        latencies,
        errors: [...streams.errors],
        wrong,
        otherCpu,
      };
    } finally {
      await streams.close();
    }
    // The next round counts its streams on top of `before`: wait until these are gone.
    if (!(await waitFor(async () => (await subscribers(control)) <= before, 15_000))) {
      throw new Error(
        `first event: the gateway still counts watchers of the ${label} round 15 s after they closed`,
      );
    }
    return result;
  } finally {
    control.close();
  }
}

/** Runs the warm-up round and the measured round on a gateway. */
export async function measureFirstEvent(
  gw: ServerProcess,
  opts = { watchers: 100, sessions: 4 },
): Promise<FirstEventResult> {
  note(`first event: ${opts.watchers} new watch streams, one submit…`);
  await round(gw, "warm-up", opts.watchers, opts.sessions);
  const r = await round(gw, "measured", opts.watchers, opts.sessions);
  check(r.errors.length === 0, `first event: ${r.errors.length} watch streams failed: ${r.errors[0]}`);
  check(
    r.wrong.length === 0,
    `first event: ${r.wrong.length} streams got another event first: ${r.wrong[0]}`,
  );
  check(
    r.received === opts.watchers,
    `first event: ${r.received} of ${opts.watchers} streams got the submitted task's event`,
  );
  const maxMs = quantile(r.latencies, 1);
  check(
    r.received === opts.watchers && maxMs <= firstEventTargetMs,
    `first event: the last of ${opts.watchers} new streams got its first event ${maxMs.toFixed(1)} ms after the submit was sent, over the ${firstEventTargetMs} ms target`,
  );
  return {
    watchers: opts.watchers,
    sessions: opts.sessions,
    openMs: r.openMs,
    submitMs: r.submitMs,
    received: r.received,
    p50Ms: quantile(r.latencies, 0.5),
    p99Ms: quantile(r.latencies, 0.99),
    maxMs,
    otherCpu: r.otherCpu,
  };
}

/** The section of BENCHMARKS.md. */
export function renderFirstEvent(r: FirstEventResult): string[] {
  const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "n/a");
  return [
    `### First event on each of ${r.watchers} WatchEvents streams opened at once`,
    "",
    `| Watchers (HTTP/2 connections) | all subscribed after ms | SubmitTask took ms | streams with the event | first event p50 ms | p99 ms | max ms (target ≤ ${firstEventTargetMs}) | other CPU |`,
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    `| ${r.watchers} (${r.sessions}) | ${ms(r.openMs)} | ${ms(r.submitMs)} | ${r.received} of ${r.watchers} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${ms(r.maxMs)} | ${Math.round(r.otherCpu * 100)} % |`,
    "",
  ];
}
