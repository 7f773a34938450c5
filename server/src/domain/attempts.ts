/**
 * Bookkeeping of a task's attempts: one entry per hand-over to a daemon, opened on assignment,
 * marked when the daemon starts the work, and closed with its outcome when the attempt ends.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type TaskAttempt, TaskAttemptSchema, TaskStatus } from "../../../gen/spage/core/common_pb.js";

/** The outcome recorded for an attempt that ends with the task moving to `to`. */
export function attemptOutcome(to: TaskStatus): string {
  switch (to) {
    case TaskStatus.COMPLETED:
      return "completed";
    case TaskStatus.FAILED:
      return "failed";
    case TaskStatus.CANCELED:
      return "canceled";
    case TaskStatus.TIMED_OUT:
      return "timed_out";
    case TaskStatus.LOST:
      return "lost";
    case TaskStatus.PENDING:
      return "requeued";
    default:
      return "running";
  }
}

/** Adds a new running attempt. */
export function openAttempt(
  attempts: readonly TaskAttempt[],
  number: number,
  daemonId: string,
  now: Date,
): TaskAttempt[] {
  return [
    ...attempts,
    create(TaskAttemptSchema, { number, daemonId, assignedAt: timestampFromDate(now), outcome: "running" }),
  ];
}

/** Marks the open attempt as started. */
export function markStarted(attempts: readonly TaskAttempt[], now: Date): TaskAttempt[] {
  return attempts.map((a, i) =>
    i === attempts.length - 1 && a.outcome === "running" && !a.startedAt
      ? create(TaskAttemptSchema, { ...a, startedAt: timestampFromDate(now) })
      : a,
  );
}

/** Closes the open attempt, if any, with `outcome` and `error`. */
export function closeAttempt(
  attempts: readonly TaskAttempt[],
  outcome: string,
  error: string,
  now: Date,
): TaskAttempt[] {
  return attempts.map((a, i) =>
    i === attempts.length - 1 && a.outcome === "running"
      ? create(TaskAttemptSchema, { ...a, outcome, error, endedAt: timestampFromDate(now) })
      : a,
  );
}
