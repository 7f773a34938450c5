/**
 * The patch and `task.status` event of one state change, with the bookkeeping each state implies:
 * start time, deadline and attempt start when work begins; the daemon, deadlines and the open
 * attempt cleared or closed when the task goes back to the queue or ends, and no host left running
 * when it ends.
 */
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { attemptOutcome, closeAttempt, markStarted } from "../domain/attempts.js";
import { runningStepLabel, settleSteps } from "../domain/play-steps.js";
import { hasRunningSteps, settleHosts } from "../domain/run-outcome.js";
import { activeStates, statusName, terminalStates, transition } from "../domain/task-state.js";
import type { NewEvent, TaskPatch, TaskRecord } from "../store/task-store.js";

type MutablePatch = { -readonly [K in keyof TaskPatch]: TaskPatch[K] };

/** Builds the change of `rec` to `to`; `more` is merged over the computed patch. */
export function statusChange(
  rec: TaskRecord,
  to: TaskStatus,
  extra: Record<string, string> = {},
  more: TaskPatch = {},
): { patch: TaskPatch; events: NewEvent[] } {
  const t = rec.task;
  const from = t.status;
  const data = t.daemonId ? { ...extra, daemon_id: t.daemonId } : extra;
  const change = transition(t.id, from, to, data);
  const now = new Date();
  const error = extra.error ?? more.error ?? "";
  const patch: MutablePatch = { status: to };
  if (to === TaskStatus.RUNNING) {
    if (!t.startedAt) patch.startedAt = now;
    patch.attempts = markStarted(t.attempts, now);
  }
  if (from === TaskStatus.PENDING && to !== TaskStatus.CANCELED && t.timeoutSeconds > 0) {
    patch.deadlineAt = new Date(now.getTime() + t.timeoutSeconds * 1000);
  }
  if (to !== TaskStatus.CANCELING && t.cancelDeadline) patch.cancelDeadline = null;
  const leavesDaemon = activeStates.has(from) && !activeStates.has(to);
  if (leavesDaemon) patch.attempts = closeAttempt(t.attempts, attemptOutcome(to), error, now);
  if (to === TaskStatus.PENDING) {
    patch.deadlineAt = null;
    patch.daemonId = "";
    patch.outputSeq = 0;
  }
  if (terminalStates.has(to)) {
    patch.completedAt = now;
    patch.deadlineAt = null;
    patch.daemonId = "";
    if (to === TaskStatus.COMPLETED) patch.progress = 100;
    // An ended run never shows a host as running; `more.hosts` may say how its steps ended instead.
    if (hasRunningSteps(t.hosts)) patch.hosts = settleHosts(t.hosts, "", false);
    // A play whose core is gone (lost, or out of time) will not finish its steps: they fail with
    // the run. A play its core ended keeps them, for late step updates to complete.
    if ((from === TaskStatus.LOST || to === TaskStatus.TIMED_OUT) && runningStepLabel(t.steps) !== "") {
      patch.steps = settleSteps(t.steps, error || statusName(to).toLowerCase());
    }
  }
  return { patch: { ...patch, ...more }, events: [{ type: "task.status", taskId: t.id, data: change.data }] };
}

/** Two changes in one write: `first`, then `second` from the state `first` leads to. */
export function chainChanges(
  rec: TaskRecord,
  first: { to: TaskStatus; extra?: Record<string, string>; more?: TaskPatch },
  second: { to: TaskStatus; extra?: Record<string, string>; more?: TaskPatch },
): { patch: TaskPatch; events: NewEvent[] } {
  const a = statusChange(rec, first.to, first.extra, first.more);
  const mid: TaskRecord = {
    ...rec,
    task: {
      ...rec.task,
      status: first.to,
      attempts: a.patch.attempts ? [...a.patch.attempts] : rec.task.attempts,
      daemonId: a.patch.daemonId ?? rec.task.daemonId,
    },
  };
  const b = statusChange(mid, second.to, second.extra, second.more);
  return { patch: { ...a.patch, ...b.patch }, events: [...a.events, ...b.events] };
}
