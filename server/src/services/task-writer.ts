/**
 * The one way services change a stored task: read it, let a decision function compute the patch and
 * events, write them as a conditional update (status and version must be unchanged), publish what
 * was committed, and start over when another writer got there first.
 */
import type { Event } from "../../../gen/spage/core/common_pb.js";
import { FailedPreconditionError, NotFoundError } from "../domain/errors.js";
import type { EventBus } from "../events/event-bus.js";
import type { Expected, NewEvent, TaskPatch, TaskRecord, TaskStore } from "../store/task-store.js";

/** What a change to one task decided: the patch and events to write, or nothing to do. */
export type Decision = { readonly patch: TaskPatch; readonly events: readonly NewEvent[] } | undefined;

/** How many times a conditional update is retried after losing a race. */
const maxRaceRetries = 16;

/** What a conditional update of `rec` expects to find. */
export function expectedOf(rec: TaskRecord): Expected {
  return { status: rec.task.status, version: rec.version };
}

/** Applies decisions to stored tasks. */
export class TaskWriter {
  constructor(
    readonly store: TaskStore,
    readonly bus: EventBus,
  ) {}

  /**
   * Reads the task, applies `decide`'s change and publishes its events; re-reads and decides again
   * when the task changed in between. `decide` may throw a domain error to refuse the change.
   */
  async mutate(
    taskId: string,
    decide: (rec: TaskRecord) => Decision,
    notFound = `task ${taskId} not found`,
  ): Promise<{ record: TaskRecord; events: Event[] }> {
    for (let attempt = 0; attempt < maxRaceRetries; attempt++) {
      const { record } = await this.store.getTask(taskId);
      if (!record) throw new NotFoundError(notFound, { task_id: taskId });
      const decision = decide(record);
      if (!decision) return { record, events: [] };
      if (Object.keys(decision.patch).length === 0) {
        const events = await this.store.appendEvents(decision.events);
        this.bus.publish(events);
        return { record, events };
      }
      const res = await this.store.updateTask(taskId, expectedOf(record), decision.patch, decision.events);
      if (!res) continue;
      this.bus.publish(res.events);
      return res;
    }
    throw new FailedPreconditionError(`task ${taskId} changed too often while updating; retry`, {
      task_id: taskId,
    });
  }
}
