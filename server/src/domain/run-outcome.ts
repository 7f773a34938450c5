/**
 * What a run's outcome is, read from what its runner reported: the recap counts kept in the result
 * map, the error naming each failed host with its task and message, and the final state of a run
 * whose core's stream ended without a run-end marker. A run that ends never leaves a host running:
 * steps still in flight then are closed here.
 */
import { create } from "@bufbuild/protobuf";
import {
  type HostSummary,
  HostSummarySchema,
  type Task,
  TaskStatus,
  type TaskStep,
} from "../../../gen/spage/core/common_pb.js";
import { failedStepsSummary, runningStepLabel, settleSteps, stepRecap } from "./play-steps.js";

/** Longest error a run's summary keeps; the events hold every report in full. */
const maxErrorLength = 4096;

/** The recap counts of a run, as kept in its result map. */
export function recapResult(hosts: readonly HostSummary[]): Record<string, string> {
  const sum = (k: "ok" | "failed" | "skipped") => String(hosts.reduce((n, h) => n + h[k], 0));
  const result: Record<string, string> = {
    hosts: String(hosts.length),
    steps_ok: sum("ok"),
    steps_failed: sum("failed"),
    steps_skipped: sum("skipped"),
  };
  for (const h of hosts) result[`recap.${h.host}`] = `ok=${h.ok} failed=${h.failed} skipped=${h.skipped}`;
  return result;
}

/**
 * One line naming what failed: the run's own error (a core's error report), then each host that
 * failed with its task and message, e.g. `web2: Install nginx: No package matching 'nginx'`.
 */
export function failureSummary(hosts: readonly HostSummary[], runError: string): string {
  const parts = runError ? [runError] : [];
  for (const h of hosts) {
    if (h.failed === 0) continue;
    parts.push(h.failedTask ? `${h.host}: ${h.failedTask}: ${h.lastError}` : `${h.host}: ${h.lastError}`);
  }
  const text = parts.join("; ") || "the run failed";
  return text.length > maxErrorLength ? `${text.slice(0, maxErrorLength - 1)}…` : text;
}

/** Whether a host has a step in flight. */
export function hasRunningSteps(hosts: readonly HostSummary[]): boolean {
  return hosts.some((h) => h.running > 0);
}

/** The step in flight on the first host that has one, e.g. `"Install nginx" on web1`. */
export function runningStepOf(hosts: readonly HostSummary[]): string {
  const h = hosts.find((x) => x.running > 0);
  if (!h) return "";
  return h.currentTask ? `"${h.currentTask}" on ${h.host}` : `a step on ${h.host}`;
}

/**
 * The hosts with no step left running: each step still in flight when the run ends becomes a
 * failure with `why` as its error when `asFailures`, and is dropped otherwise (the run's outcome
 * came from elsewhere, e.g. the daemon's exit code).
 */
export function settleHosts(hosts: readonly HostSummary[], why: string, asFailures: boolean): HostSummary[] {
  return hosts.map((h) => {
    if (h.running === 0) return h;
    const settled = create(HostSummarySchema, { ...h, running: 0, currentTask: "" });
    if (asFailures) {
      settled.failed += h.running;
      settled.lastError = why;
      settled.failedTask = h.currentTask;
    }
    return settled;
  });
}

/** The final state of a core-only run whose core's stream ended without a run-end marker. */
export interface CoreRunOutcome {
  readonly status: TaskStatus.COMPLETED | TaskStatus.FAILED | TaskStatus.CANCELED;
  readonly error: string;
  readonly hosts: HostSummary[];
  readonly result: Record<string, string>;
  /** A play's steps, none left running. */
  readonly steps?: TaskStep[];
}

/** The step in flight of a run of either era, named; "" when none is. */
export function midStep(task: Task): string {
  return task.era === "play" ? runningStepLabel(task.steps) : runningStepOf(task.hosts);
}

/** Why a play whose core's streams ended without completing it failed. */
export const noCompletion = "core exited without reporting completion";

/**
 * How a play ends when its core's streams ended without RegisterPlayCompletion or a final
 * StreamPlayProgress update: CANCELED when a cancel was pending, FAILED otherwise (a play must say
 * it completed), its failed steps named after the cause and steps still running failed with it.
 */
export function playWithoutCompletion(task: Task, why: string): CoreRunOutcome {
  const steps = settleSteps(task.steps, `interrupted: ${why}`);
  const result = stepRecap(steps);
  if (task.status === TaskStatus.CANCELING) {
    return { status: TaskStatus.CANCELED, error: task.error || "canceled", hosts: [], result, steps };
  }
  const failed = failedStepsSummary(task.steps);
  const error = [noCompletion, task.error, failed].filter((x) => x !== "").join("; ");
  return { status: TaskStatus.FAILED, error, hosts: [], result, steps };
}

/**
 * How a core-only run ends from what its core reported: CANCELED when a cancel was pending;
 * FAILED when a host's step failed, an error report arrived (the task's error while it ran) or a
 * step was still in flight (`interrupted` says why); COMPLETED otherwise.
 */
export function coreRunOutcome(task: Task, interrupted: string): CoreRunOutcome {
  const hosts = settleHosts(task.hosts, interrupted, true);
  const result = recapResult(hosts);
  if (task.status === TaskStatus.CANCELING) {
    return { status: TaskStatus.CANCELED, error: task.error || "canceled", hosts, result };
  }
  const failed = task.error !== "" || hosts.some((h) => h.failed > 0);
  if (!failed) return { status: TaskStatus.COMPLETED, error: "", hosts, result };
  return { status: TaskStatus.FAILED, error: failureSummary(hosts, task.error), hosts, result };
}
