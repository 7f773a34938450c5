/** Names, times and durations as the dashboard shows them. */
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { TaskPriority, TaskStatus } from "../../gen/spage/core/common_pb.js";

/** Short state name, e.g. "running". */
export function statusName(s: TaskStatus): string {
  return (TaskStatus[s] ?? String(s)).toLowerCase().replace("_", " ");
}

/** The CSS class of a state's badge, e.g. "st-timed_out". */
export function statusClass(s: TaskStatus): string {
  return `st-${(TaskStatus[s] ?? "unspecified").toLowerCase()}`;
}

/** Every state a task can be in, in the order filters list them. */
export const allStates: readonly TaskStatus[] = [
  TaskStatus.WAITING,
  TaskStatus.PENDING,
  TaskStatus.ASSIGNED,
  TaskStatus.RUNNING,
  TaskStatus.CANCELING,
  TaskStatus.COMPLETED,
  TaskStatus.FAILED,
  TaskStatus.CANCELED,
  TaskStatus.SKIPPED,
  TaskStatus.TIMED_OUT,
  TaskStatus.LOST,
];

/** An id cut to `max` characters with an ellipsis (the whole id belongs in a title). */
export function shortId(id: string, max = 14): string {
  return id.length > max ? `${id.slice(0, max - 2)}…` : id;
}

/** Short priority name, e.g. "high". */
export function priorityName(p: TaskPriority): string {
  return (TaskPriority[p] ?? String(p)).toLowerCase();
}

/** States after which nothing changes. */
export const endedStates: ReadonlySet<TaskStatus> = new Set([
  TaskStatus.COMPLETED,
  TaskStatus.FAILED,
  TaskStatus.CANCELED,
  TaskStatus.TIMED_OUT,
  TaskStatus.SKIPPED,
]);

/** Whether a cancel request can still change the task (it has not ended and is not being canceled). */
export function cancelable(s: TaskStatus): boolean {
  return !endedStates.has(s) && s !== TaskStatus.CANCELING;
}

/** A timestamp as a Date, or undefined. */
export function dateOf(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

/** "3 s", "4 min", "2 h", "5 d". */
export function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** A run time given in seconds: "0.26 s" below 10 s, then as `span` says ("12 s", "4 min"). */
export function seconds(s: number): string {
  return s < 10 ? `${s.toFixed(2)} s` : span(s * 1000);
}

/** Local time of day, with seconds. */
export function clock(d: Date | undefined): string {
  return d ? d.toLocaleTimeString(undefined, { hour12: false }) : "-";
}
