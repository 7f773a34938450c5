/**
 * Two servers loaded in alternating slices: one h2load process per server, both started together,
 * and every quarter second the running one is paused (SIGSTOP) and the other resumed (SIGCONT), so
 * only one server is busy at a time and each has been busy in every half second of the run.
 *
 * This machine's speed drifts by tens of percent within seconds; runs of a few seconds one after
 * the other catch different moments of the drift, and their ratio moves by more than the cost of
 * authentication it is meant to show. Slices of a quarter second put both servers under the same
 * drift. Each side is judged by its CPU per call (server CPU seconds from /proc over the run ÷ calls
 * h2load completed): a paused side only finishes its calls in flight, then sits idle using no CPU.
 */
import type { ChildProcess } from "node:child_process";
import { cpuSeconds } from "./gateway.js";
import { type H2loadResult, runH2load } from "./h2load.js";
import { type Method, type Protocol, protocolLabel } from "./protocols.js";
import { checkAllAnswered, loadOf, type SteadyTarget } from "./steady-load.js";

/** Length of one slice of load, in milliseconds. */
export const sliceMs = 250;

/** What one side of an interleaved run measured. */
export interface SliceRun {
  /** Calls completed per second of the side's own slices. */
  readonly callsPerSec: number;
  /** Server CPU per completed call, in microseconds. */
  readonly cpuUsPerCall: number;
  readonly done: number;
}

/** Loads `method` over `protocol` on both targets for `busySeconds` each, in alternating slices. */
export async function interleavedRun(
  targets: readonly [SteadyTarget, SteadyTarget],
  taskIds: readonly [string, string],
  protocol: Protocol,
  method: Method,
  busySeconds: number,
): Promise<[SliceRun, SliceRun]> {
  const loads: (ChildProcess | undefined)[] = [undefined, undefined];
  let bothStarted!: () => void;
  const started = new Promise<void>((resolve) => {
    bothStarted = resolve;
  });
  const cpu0 = targets.map((t) => cpuSeconds(t.pid));
  const runs = targets.map((t, i) =>
    runH2load({
      ...loadOf(t, protocol, method, taskIds[i] ?? ""),
      // Wall time: each side is paused half of it.
      durationS: busySeconds * 2,
      started: (child) => {
        if (i === 1) child.kill("SIGSTOP");
        loads[i] = child;
        if (loads[0] && loads[1]) bothStarted();
      },
    }),
  );
  const busyMs = [0, 0];
  let running = 0;
  let since = 0;
  let timer: NodeJS.Timeout | undefined;
  const switchOver = () => {
    const now = performance.now();
    busyMs[running] = (busyMs[running] ?? 0) + now - since;
    since = now;
    loads[running]?.kill("SIGSTOP");
    running = 1 - running;
    loads[running]?.kill("SIGCONT");
  };
  const finish = () => {
    clearInterval(timer);
    // Whichever ends first, the other must run to its end.
    for (const l of loads) l?.kill("SIGCONT");
  };
  let results: H2loadResult[];
  try {
    await Promise.race([started, Promise.all(runs)]);
    since = performance.now();
    timer = setInterval(switchOver, sliceMs);
    results = await Promise.all(runs.map((r) => r.finally(finish)));
  } finally {
    finish();
  }
  busyMs[running] = (busyMs[running] ?? 0) + performance.now() - since;
  const cpu = targets.map((t, i) => cpuSeconds(t.pid) - (cpu0[i] ?? 0));
  return results.map((r, i): SliceRun => {
    checkAllAnswered(r, `${targets[i]?.label} ${protocolLabel[protocol]} ${method}`);
    return {
      callsPerSec: r.done / ((busyMs[i] ?? 0) / 1000),
      cpuUsPerCall: ((cpu[i] ?? 0) / r.done) * 1e6,
      done: r.done,
    };
  }) as [SliceRun, SliceRun];
}
