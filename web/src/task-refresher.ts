/**
 * Keeps a set of tasks fresh from live events: every event about a watched task schedules one
 * GetTaskStatus for it, coalesced (one call per task per burst), so a view shows exactly what the
 * gateway stores without reloading. Each task comes with the event log position its answer reflects,
 * so a view can drop an answer that was overtaken by a newer one.
 */
import type { Task } from "../../gen/spage/core/common_pb.js";
import { api } from "./api.js";

/** Coalesces refreshes of tasks by id. */
export class TaskRefresher {
  private readonly pending = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly onTask: (task: Task, sequence: bigint) => void,
    private readonly delayMs = 100,
  ) {}

  /** Schedules a refresh of `id`. */
  touch(id: string): void {
    this.pending.add(id);
    this.timer ??= setTimeout(() => this.flush(), this.delayMs);
  }

  /** Cancels what is scheduled. */
  dispose(): void {
    clearTimeout(this.timer);
    this.pending.clear();
  }

  private flush(): void {
    this.timer = undefined;
    const ids = [...this.pending];
    this.pending.clear();
    for (const id of ids) {
      api.getTaskStatus({ taskId: id }).then(
        (r) => r.task && this.onTask(r.task, r.sequence),
        () => {},
      );
    }
  }
}
