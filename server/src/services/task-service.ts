/**
 * Task operations shared by SpageExecution and SpageAPI: submit, register, read, list, cancel and
 * progress. Validates input, goes through the state machine for every status change, writes through
 * the TaskStore and publishes what was committed on the event bus.
 */
import { randomUUID } from "node:crypto";
import type { Event, Task } from "../../../gen/spage/core/common_pb.js";
import { TaskPriority, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "../domain/errors.js";
import { parseStatusName, statusName, terminalStates, transition } from "../domain/task-state.js";
import {
  checkPriority,
  checkReason,
  checkStringMap,
  checkTaskId,
  checkTaskType,
  effectivePriority,
  requestFingerprint,
  Violations,
} from "../domain/task-validation.js";
import type { EventBus } from "../events/event-bus.js";
import type { NewEvent, TaskPage, TaskPatch, TaskRecord, TaskStore } from "../store/task-store.js";

/** A request to create a task. */
export interface SubmitInput {
  readonly taskId: string;
  readonly type: string;
  readonly priority: TaskPriority;
  readonly payload: Readonly<Record<string, string>>;
  readonly metadata: Readonly<Record<string, string>>;
}

/** A Spage core's registration of a run. */
export interface RegisterInput {
  readonly taskId: string;
  readonly playbook: string;
  readonly inventory: string;
  readonly variables: Readonly<Record<string, string>>;
  readonly engine: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/** One progress report of a runner. */
export interface ProgressInput {
  readonly taskId: string;
  readonly progress: number;
  readonly message: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/** Listing filters as they arrive on the wire. */
export interface ListInput {
  readonly limit: number;
  readonly offset: number;
  readonly status: string;
  readonly type: string;
}

/** How many times a conditional update is retried after losing a race. */
const maxRaceRetries = 8;

/** The task operations. */
export class TaskService {
  constructor(
    private readonly store: TaskStore,
    private readonly bus: EventBus,
  ) {}

  /** Creates a task, or returns the existing one for an identical retry. */
  async submit(
    input: SubmitInput,
    fields = { taskId: "task_id", type: "type" },
  ): Promise<{ task: Task; created: boolean }> {
    const v = new Violations();
    checkTaskId(v, fields.taskId, input.taskId, false);
    checkTaskType(v, fields.type, input.type);
    checkPriority(v, "priority", input.priority);
    checkStringMap(v, "payload", input.payload);
    checkStringMap(v, "metadata", input.metadata);
    v.throwIfAny();

    const priority = effectivePriority(input.priority);
    const requestHash = requestFingerprint({
      type: input.type,
      priority,
      payload: input.payload,
      metadata: input.metadata,
    });
    const id = input.taskId || randomUUID();
    const { record, created, events } = await this.store.createTask(
      {
        id,
        type: input.type,
        priority,
        payload: input.payload,
        metadata: input.metadata,
        requestHash,
        status: TaskStatus.PENDING,
      },
      {
        type: "task.submitted",
        taskId: id,
        data: { type: input.type, priority: TaskPriority[priority] ?? "NORMAL", status: "PENDING" },
      },
    );
    if (!created && record.requestHash !== requestHash) {
      throw new AlreadyExistsError(
        `task ${id} already exists with different contents; choose another task_id`,
        {
          task_id: id,
        },
      );
    }
    this.bus.publish(events);
    return { task: record.task, created };
  }

  /** Creates a playbook task from ExecuteTask's fields. */
  async execute(input: {
    taskId: string;
    playbook: string;
    inventory: string;
    variables: Readonly<Record<string, string>>;
    engine: string;
    priority: TaskPriority;
    metadata: Readonly<Record<string, string>>;
  }): Promise<{ task: Task; created: boolean }> {
    const v = new Violations();
    if (input.playbook.trim() === "") v.add("playbook", "is required (path or name of the playbook)");
    checkStringMap(v, "variables", input.variables);
    v.throwIfAny();
    return this.submit({
      taskId: input.taskId,
      type: "playbook",
      priority: input.priority,
      payload: playbookPayload(input),
      metadata: input.metadata,
    });
  }

  /**
   * Creates or updates the task of a core's run. Empty fields keep what is stored, maps are merged
   * over it, so a core's second, thinner registration loses nothing.
   */
  async register(input: RegisterInput): Promise<Task> {
    const v = new Violations();
    checkTaskId(v, "task_id", input.taskId, true);
    checkStringMap(v, "variables", input.variables);
    checkStringMap(v, "metadata", input.metadata);
    v.throwIfAny();

    for (let attempt = 0; attempt < maxRaceRetries; attempt++) {
      const existing = await this.store.getTask(input.taskId);
      if (!existing) {
        const payload = playbookPayload(input);
        const { record, created, events } = await this.store.createTask(
          {
            id: input.taskId,
            type: "playbook",
            priority: TaskPriority.NORMAL,
            payload,
            metadata: input.metadata,
            requestHash: requestFingerprint({ registered: input.taskId }),
            status: TaskStatus.PENDING,
          },
          {
            type: "task.registered",
            taskId: input.taskId,
            data: { playbook: input.playbook, engine: input.engine },
          },
        );
        if (!created) continue; // registered concurrently: merge into it
        this.bus.publish(events);
        return record.task;
      }
      const merged = mergeRegistration(existing, input);
      const res = await this.store.updateTask(input.taskId, existing.task.status, merged, [
        { type: "task.registered", taskId: input.taskId, data: { playbook: merged.payload?.playbook ?? "" } },
      ]);
      if (!res) continue;
      this.bus.publish(res.events);
      return res.record.task;
    }
    throw new FailedPreconditionError(`task ${input.taskId} changed too often while registering; retry`);
  }

  /** The task with this id. */
  async get(taskId: string): Promise<Task> {
    const v = new Violations();
    checkTaskId(v, "task_id", taskId, true);
    v.throwIfAny();
    const rec = await this.store.getTask(taskId);
    if (!rec) throw new NotFoundError(`task ${taskId} not found`, { task_id: taskId });
    return rec.task;
  }

  /** A page of tasks. */
  async list(input: ListInput): Promise<TaskPage> {
    const v = new Violations();
    if (input.limit < 0 || input.limit > 1000)
      v.add("limit", `must be between 1 and 1000 (got ${input.limit})`);
    if (input.offset < 0) v.add("offset", `must not be negative (got ${input.offset})`);
    const status = input.status === "" ? undefined : parseStatusName(input.status);
    if (input.status !== "" && status === undefined) {
      v.add("status", `unknown status "${input.status}"; use e.g. PENDING, RUNNING, COMPLETED, FAILED`);
    }
    v.throwIfAny();
    return this.store.listTasks({
      limit: input.limit === 0 ? 50 : input.limit,
      offset: input.offset,
      status,
      type: input.type || undefined,
    });
  }

  /**
   * Cancels a task: PENDING ends CANCELED at once, ASSIGNED or RUNNING become CANCELING, an already
   * CANCELING task is accepted again, anything that has ended is FailedPrecondition.
   */
  async cancel(taskId: string, reason: string): Promise<Task> {
    const v = new Violations();
    checkTaskId(v, "task_id", taskId, true);
    checkReason(v, "reason", reason);
    v.throwIfAny();
    for (let attempt = 0; attempt < maxRaceRetries; attempt++) {
      const rec = await this.store.getTask(taskId);
      if (!rec) throw new NotFoundError(`task ${taskId} not found`, { task_id: taskId });
      const from = rec.task.status;
      if (from === TaskStatus.CANCELING) return rec.task;
      if (terminalStates.has(from)) {
        throw new FailedPreconditionError(
          `task ${taskId} already ended as ${statusName(from)}; nothing to cancel`,
          {
            task_id: taskId,
            status: statusName(from),
          },
        );
      }
      const to = from === TaskStatus.PENDING ? TaskStatus.CANCELED : TaskStatus.CANCELING;
      const change = transition(taskId, from, to, reason ? { reason } : {});
      const patch: TaskPatch =
        to === TaskStatus.CANCELED
          ? { status: to, completedAt: new Date(), error: reason || "canceled" }
          : { status: to };
      const res = await this.store.updateTask(taskId, from, patch, [
        { type: "task.status", taskId, data: change.data },
      ]);
      if (!res) continue;
      this.bus.publish(res.events);
      return res.record.task;
    }
    throw new FailedPreconditionError(`task ${taskId} changed too often while canceling; retry`);
  }

  /**
   * Records one progress update as an event; the first update of a waiting task makes it RUNNING.
   * Returns the stored events (the last one is the progress event).
   */
  async recordProgress(input: ProgressInput): Promise<Event[]> {
    const v = new Violations();
    checkTaskId(v, "task_id", input.taskId, true);
    checkStringMap(v, "metadata", input.metadata);
    if (!Number.isFinite(input.progress)) v.add("progress", "must be a finite number");
    v.throwIfAny();
    const progressEvent: NewEvent = {
      type: "task.progress",
      taskId: input.taskId,
      data: {
        progress: String(input.progress),
        message: input.message,
        ...pick(input.metadata, ["task", "host", "status", "level", "duration_ms", "error"]),
      },
    };
    for (let attempt = 0; attempt < maxRaceRetries; attempt++) {
      const rec = await this.store.getTask(input.taskId);
      if (!rec) {
        throw new NotFoundError(`task ${input.taskId} not found; call RegisterTask first`, {
          task_id: input.taskId,
        });
      }
      const from = rec.task.status;
      if (from === TaskStatus.PENDING || from === TaskStatus.ASSIGNED) {
        const change = transition(input.taskId, from, TaskStatus.RUNNING);
        const res = await this.store.updateTask(
          input.taskId,
          from,
          { status: TaskStatus.RUNNING, startedAt: new Date() },
          [{ type: "task.status", taskId: input.taskId, data: change.data }, progressEvent],
        );
        if (!res) continue;
        this.bus.publish(res.events);
        return res.events;
      }
      const events = await this.store.appendEvents([progressEvent]);
      this.bus.publish(events);
      return events;
    }
    throw new InvalidArgumentError([{ field: "task_id", description: "task changed too often; retry" }]);
  }
}

function playbookPayload(input: {
  playbook: string;
  inventory: string;
  variables: Readonly<Record<string, string>>;
  engine: string;
}): Record<string, string> {
  const payload: Record<string, string> = {};
  if (input.playbook) payload.playbook = input.playbook;
  if (input.inventory) payload.inventory = input.inventory;
  if (input.engine) payload.engine = input.engine;
  if (Object.keys(input.variables).length > 0) payload.variables = JSON.stringify(input.variables);
  return payload;
}

function mergeRegistration(existing: TaskRecord, input: RegisterInput): TaskPatch {
  const payload = { ...existing.task.payload };
  if (input.playbook) payload.playbook = input.playbook;
  if (input.inventory) payload.inventory = input.inventory;
  if (input.engine) payload.engine = input.engine;
  if (Object.keys(input.variables).length > 0) {
    let vars: Record<string, string> = {};
    try {
      vars = JSON.parse(payload.variables ?? "{}") as Record<string, string>;
    } catch {
      vars = {};
    }
    payload.variables = JSON.stringify({ ...vars, ...input.variables });
  }
  return { payload, metadata: { ...existing.metadata, ...input.metadata } };
}

function pick(map: Readonly<Record<string, string>>, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) {
    const val = map[k];
    if (val !== undefined && val !== "") out[k] = val;
  }
  return out;
}
