/**
 * The task state machine: one table of which state may follow which, and one `transition()` that
 * every state change goes through. Stores persist a change as a conditional update
 * (`... WHERE status = <from>`) so two writers cannot both win.
 *
 * | state     | may become                                                        |
 * | --------- | ----------------------------------------------------------------- |
 * | WAITING   | PENDING (every dependency COMPLETED), CANCELED, SKIPPED           |
 * | PENDING   | ASSIGNED, RUNNING, CANCELED, SKIPPED                              |
 * | ASSIGNED  | RUNNING, PENDING, CANCELING, COMPLETED, FAILED, TIMED_OUT         |
 * | RUNNING   | COMPLETED, FAILED, CANCELING, CANCELED, TIMED_OUT, LOST, SKIPPED |
 * | CANCELING | CANCELED, COMPLETED, FAILED, TIMED_OUT, LOST                      |
 * | LOST      | PENDING (policy requeue), FAILED (policy fail), CANCELED (was canceling) |
 * | COMPLETED, FAILED, CANCELED, SKIPPED, TIMED_OUT | nothing: terminal                   |
 *
 * ASSIGNED -> PENDING is a daemon vanishing before it started the task (or giving it back);
 * WAITING is a task whose dependencies have not all COMPLETED (services/dependencies.ts): it is
 * never dispatched, and ends CANCELED or SKIPPED with a dependency that ended otherwise.
 * PENDING -> RUNNING is a Spage core that registered and reported progress without a daemon in
 * between. LOST is where a task whose daemon vanished mid-run waits for its lost-task policy:
 * "requeue" sends it back to PENDING while attempts remain, "fail" ends it FAILED; a task that was
 * being canceled ends FAILED under "fail" and CANCELED under "requeue" (it is never rerun).
 */
import { TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { FailedPreconditionError } from "./errors.js";

/** Which states may follow each state. */
export const allowedTransitions: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  [TaskStatus.UNSPECIFIED]: [],
  [TaskStatus.WAITING]: [TaskStatus.PENDING, TaskStatus.CANCELED, TaskStatus.SKIPPED],
  [TaskStatus.PENDING]: [TaskStatus.ASSIGNED, TaskStatus.RUNNING, TaskStatus.CANCELED, TaskStatus.SKIPPED],
  [TaskStatus.ASSIGNED]: [
    TaskStatus.RUNNING,
    TaskStatus.PENDING,
    TaskStatus.CANCELING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.TIMED_OUT,
  ],
  [TaskStatus.RUNNING]: [
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.CANCELING,
    TaskStatus.CANCELED,
    TaskStatus.TIMED_OUT,
    TaskStatus.LOST,
    TaskStatus.SKIPPED,
  ],
  [TaskStatus.CANCELING]: [
    TaskStatus.CANCELED,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.TIMED_OUT,
    TaskStatus.LOST,
  ],
  [TaskStatus.LOST]: [TaskStatus.PENDING, TaskStatus.FAILED, TaskStatus.CANCELED],
  [TaskStatus.COMPLETED]: [],
  [TaskStatus.FAILED]: [],
  [TaskStatus.CANCELED]: [],
  [TaskStatus.SKIPPED]: [],
  [TaskStatus.TIMED_OUT]: [],
};

/** States after which nothing else happens to a task. */
export const terminalStates: ReadonlySet<TaskStatus> = new Set([
  TaskStatus.COMPLETED,
  TaskStatus.FAILED,
  TaskStatus.CANCELED,
  TaskStatus.SKIPPED,
  TaskStatus.TIMED_OUT,
]);

/** States in which a task belongs to a daemon. */
export const activeStates: ReadonlySet<TaskStatus> = new Set([
  TaskStatus.ASSIGNED,
  TaskStatus.RUNNING,
  TaskStatus.CANCELING,
]);

/** The short upper-case name of a state, e.g. `RUNNING`. */
export function statusName(status: TaskStatus): string {
  return TaskStatus[status] ?? `STATUS_${status}`;
}

/** Whether `to` may follow `from`. */
export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return allowedTransitions[from]?.includes(to) ?? false;
}

/** The event data that records a state change (type `task.status`). */
export interface StatusChange {
  readonly from: TaskStatus;
  readonly to: TaskStatus;
  readonly data: Record<string, string>;
}

/**
 * Asserts that `from -> to` is legal and returns the data of the `task.status` event that records
 * it. Throws FailedPreconditionError naming both states otherwise.
 */
export function transition(
  taskId: string,
  from: TaskStatus,
  to: TaskStatus,
  extra: Record<string, string> = {},
): StatusChange {
  if (!canTransition(from, to)) {
    throw new FailedPreconditionError(
      `task ${taskId} is ${statusName(from)} and cannot become ${statusName(to)}`,
      { task_id: taskId, from: statusName(from), to: statusName(to) },
    );
  }
  return { from, to, data: { from: statusName(from), to: statusName(to), ...extra } };
}

/**
 * Parses a status filter as clients write it: `RUNNING`, `running` or `TASK_STATUS_RUNNING`.
 * Returns undefined for an unknown name.
 */
export function parseStatusName(name: string): TaskStatus | undefined {
  const upper = name
    .trim()
    .toUpperCase()
    .replace(/^TASK_STATUS_/, "");
  const value = (TaskStatus as unknown as Record<string, number | undefined>)[upper];
  return typeof value === "number" && value !== TaskStatus.UNSPECIFIED ? value : undefined;
}
