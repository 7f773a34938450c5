/**
 * How a play's step updates (the play era's TaskProgressUpdate, one Ansible task each) become the
 * step table of its task, and how a play's states map to the gateway's. A core sends step updates
 * from concurrent goroutines and resends after a broken stream, so they are applied idempotently
 * and in any order: a step's first final state (COMPLETED, FAILED, SKIPPED, CANCELED) is kept, a
 * later RUNNING never undoes it, and fields only fill what is still empty.
 */
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type TaskMetrics,
  TaskStatus,
  type TaskStep,
  TaskStepSchema,
} from "../../../gen/spage/core/common_pb.js";
import { PlayStatus } from "../../../gen/spage/core/play_pb.js";

/** Most steps one play's table keeps; updates of further steps are kept as events only. */
export const maxSteps = 2000;
/** Longest output and error a step keeps in the table; its events keep up to `maxEventOutput`. */
export const maxStepText = 4096;
/** Longest output a step event keeps. */
export const maxEventOutput = 65536;

/** The states a step update may carry. */
export const stepStates: ReadonlySet<TaskStatus> = new Set([
  TaskStatus.PENDING,
  TaskStatus.RUNNING,
  TaskStatus.COMPLETED,
  TaskStatus.FAILED,
  TaskStatus.SKIPPED,
  TaskStatus.CANCELED,
]);

/** The states that end a step. */
const finalStepStates: ReadonlySet<TaskStatus> = new Set([
  TaskStatus.COMPLETED,
  TaskStatus.FAILED,
  TaskStatus.SKIPPED,
  TaskStatus.CANCELED,
]);

/** Whether a step has ended. */
export const isFinalStep = (s: TaskStatus): boolean => finalStepStates.has(s);

/** The facts of one step update. */
export interface StepUpdate {
  readonly number: number;
  readonly name: string;
  readonly status: TaskStatus;
  readonly output: string;
  readonly error: string;
  readonly metrics?: TaskMetrics;
  readonly startedAt?: Timestamp;
  readonly completedAt?: Timestamp;
}

/** Cuts `text` to at most `max` bytes of UTF-8, marking the cut. */
export function clipBytes(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  const cut = Buffer.from(text)
    .subarray(0, max - 3)
    .toString("utf8")
    .replace(/\uFFFD$/, "");
  return `${cut}…`;
}

/**
 * Applies one update to a play's steps; returns the new table sorted by number, and whether the
 * update changed anything. A step the table has no room for is left out (`full`).
 */
export function applyStepUpdate(
  steps: readonly TaskStep[],
  u: StepUpdate,
  now = new Date(),
): { steps: TaskStep[]; changed: boolean; full: boolean } {
  const i = steps.findIndex((s) => s.number === u.number);
  if (i < 0 && steps.length >= maxSteps) return { steps: [...steps], changed: false, full: true };
  const old = i >= 0 ? steps[i] : undefined;
  const step = create(TaskStepSchema, old ? { ...old } : { number: u.number });
  const before = old ? JSON.stringify(stepFacts(old)) : "";
  if (!step.name && u.name) step.name = u.name;
  if (!step.startedAt && u.startedAt) step.startedAt = u.startedAt;
  const finalBefore = isFinalStep(step.status);
  if (!finalBefore) {
    // A final state is taken once; RUNNING only replaces nothing or PENDING.
    if (
      isFinalStep(u.status) ||
      step.status === TaskStatus.UNSPECIFIED ||
      step.status === TaskStatus.PENDING
    ) {
      step.status = u.status;
    }
  }
  if (isFinalStep(u.status) && (!finalBefore || step.status === u.status)) {
    if (!step.output && u.output) step.output = clipBytes(u.output, maxStepText);
    if (!step.error && u.error) step.error = clipBytes(u.error, maxStepText);
    if (!step.metrics && u.metrics) step.metrics = u.metrics;
    if (!step.completedAt) step.completedAt = u.completedAt ?? timestampFromDate(now);
    if (step.duration === 0) step.duration = durationOf(step);
  } else if (!step.output && u.output) {
    step.output = clipBytes(u.output, maxStepText);
  }
  const changed = before !== JSON.stringify(stepFacts(step));
  if (!changed) return { steps: [...steps], changed: false, full: false };
  step.updatedAt = timestampFromDate(now);
  const next = [...steps];
  if (i >= 0) next[i] = step;
  else next.push(step);
  next.sort((a, b) => a.number - b.number);
  return { steps: next, changed: true, full: false };
}

/** A step without its update time, to tell whether an update changed it. */
function stepFacts(s: TaskStep): unknown {
  const ms = (t: Timestamp | undefined) => (t ? timestampMs(t) : null);
  return [
    s.name,
    s.status,
    s.output,
    s.error,
    s.duration,
    s.metrics?.duration,
    ms(s.startedAt),
    ms(s.completedAt),
  ];
}

function durationOf(s: TaskStep): number {
  if (s.metrics && s.metrics.duration > 0) return s.metrics.duration;
  if (!s.startedAt || !s.completedAt) return 0;
  const ms = timestampDate(s.completedAt).getTime() - timestampDate(s.startedAt).getTime();
  return ms > 0 ? ms / 1000 : 0;
}

/** Progress in percent from the steps seen so far; below 100 until the play ends. */
export function stepProgress(steps: readonly TaskStep[]): number {
  if (steps.length === 0) return 0;
  const done = steps.filter((s) => isFinalStep(s.status)).length;
  return Math.min(99, Math.round((1000 * done) / steps.length) / 10);
}

/** The step counts of a play, as kept in its result map. */
export function stepRecap(steps: readonly TaskStep[]): Record<string, string> {
  const count = (st: TaskStatus) => String(steps.filter((s) => s.status === st).length);
  return {
    steps: String(steps.length),
    steps_ok: count(TaskStatus.COMPLETED),
    steps_failed: count(TaskStatus.FAILED),
    steps_skipped: count(TaskStatus.SKIPPED),
  };
}

/** The failed steps of a play in one line, e.g. `task 3 "Install nginx": no package`. */
export function failedStepsSummary(steps: readonly TaskStep[]): string {
  return steps
    .filter((s) => s.status === TaskStatus.FAILED)
    .map((s) => `${stepLabel(s)}: ${s.error || "failed"}`)
    .join("; ");
}

/** How a step is named in messages: `task 3 "Install nginx"`. */
export function stepLabel(s: TaskStep): string {
  return s.name ? `task ${s.number} "${s.name}"` : `task ${s.number}`;
}

/** The first step still running, named; "" when none is. */
export function runningStepLabel(steps: readonly TaskStep[]): string {
  const s = steps.find((x) => !isFinalStep(x.status));
  return s ? stepLabel(s) : "";
}

/** The steps with none left running: each becomes FAILED with `why` (the play ended without it). */
export function settleSteps(steps: readonly TaskStep[], why: string, now = new Date()): TaskStep[] {
  return steps.map((s) =>
    isFinalStep(s.status)
      ? s
      : create(TaskStepSchema, {
          ...s,
          status: TaskStatus.FAILED,
          error: s.error || why,
          completedAt: timestampFromDate(now),
          updatedAt: timestampFromDate(now),
        }),
  );
}

/** The play era's name for a task's state. */
export function playStatusOf(s: TaskStatus): PlayStatus {
  switch (s) {
    case TaskStatus.PENDING:
    case TaskStatus.ASSIGNED:
      return PlayStatus.PENDING;
    case TaskStatus.RUNNING:
    case TaskStatus.CANCELING:
    case TaskStatus.LOST:
      return PlayStatus.RUNNING;
    case TaskStatus.COMPLETED:
      return PlayStatus.COMPLETED;
    case TaskStatus.FAILED:
    case TaskStatus.TIMED_OUT:
      return PlayStatus.FAILED;
    case TaskStatus.CANCELED:
    case TaskStatus.SKIPPED:
      return PlayStatus.CANCELED;
    default:
      return PlayStatus.UNSPECIFIED;
  }
}

/** The task state a play's final state ends it in; undefined for a state that does not end it. */
export function finalTaskStatusOf(s: PlayStatus): TaskStatus | undefined {
  switch (s) {
    case PlayStatus.COMPLETED:
      return TaskStatus.COMPLETED;
    case PlayStatus.FAILED:
      return TaskStatus.FAILED;
    case PlayStatus.CANCELED:
      return TaskStatus.CANCELED;
    default:
      return undefined;
  }
}
