/**
 * The storage seam: everything the services need from a store, and nothing that ties them to one
 * database. Every method that changes a task also appends the events describing the change, in the
 * same atomic step, so the event log and the task table never disagree.
 */
import type { Event, Task, TaskPriority, TaskStatus } from "../../../gen/spage/core/common_pb.js";

/** A task as the store keeps it: the wire Task plus what only the gateway needs. */
export interface TaskRecord {
  readonly task: Task;
  /** Free-form labels given at submit time. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Fingerprint of the request that created the task, for idempotent re-submits. */
  readonly requestHash: string;
}

/** What a new task is made of. */
export interface NewTask {
  readonly id: string;
  readonly type: string;
  readonly priority: TaskPriority;
  readonly payload: Readonly<Record<string, string>>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly requestHash: string;
  /** Initial state; PENDING unless a runner registers a run it already started. */
  readonly status: TaskStatus;
}

/** An event to append: the store assigns id, sequence and timestamp. */
export interface NewEvent {
  readonly type: string;
  readonly taskId: string;
  readonly data: Readonly<Record<string, string>>;
}

/** A change to a task's fields, applied together with a status check. */
export interface TaskPatch {
  readonly status?: TaskStatus;
  readonly progress?: number;
  readonly payload?: Readonly<Record<string, string>>;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly result?: Readonly<Record<string, string>>;
  readonly error?: string;
  readonly startedAt?: Date;
  readonly completedAt?: Date;
}

/** Filters of a task listing. */
export interface TaskQuery {
  readonly limit: number;
  readonly offset: number;
  readonly status?: TaskStatus;
  readonly type?: string;
}

/** A page of tasks and the event sequence it reflects. */
export interface TaskPage {
  readonly tasks: Task[];
  readonly total: number;
  readonly sequence: bigint;
}

/** Filters of an event read. */
export interface EventQuery {
  readonly afterSequence: bigint;
  readonly taskId?: string;
  readonly types?: ReadonlySet<string>;
  readonly limit: number;
}

/** Counts for metrics and health. */
export interface StoreStats {
  readonly tasksByStatus: ReadonlyMap<TaskStatus, number>;
  readonly lastSequence: bigint;
}

/** Persistence for tasks and their event log. Implementations must be safe for concurrent callers. */
export interface TaskStore {
  /** Inserts a task and its first event; returns the existing record untouched if the id is taken. */
  createTask(
    task: NewTask,
    event: NewEvent,
  ): Promise<{ record: TaskRecord; created: boolean; events: Event[] }>;
  /** The task with this id, if any. */
  getTask(id: string): Promise<TaskRecord | undefined>;
  /**
   * Applies `patch` if the task is still in `expected` state, and appends `events`. Returns the
   * updated record, or undefined when the task is missing or its state moved on (the caller lost a
   * race and should re-read).
   */
  updateTask(
    id: string,
    expected: TaskStatus,
    patch: TaskPatch,
    events: readonly NewEvent[],
  ): Promise<{ record: TaskRecord; events: Event[] } | undefined>;
  /** Appends events that change no task field (e.g. progress details). */
  appendEvents(events: readonly NewEvent[]): Promise<Event[]>;
  /** A page of tasks, newest first. */
  listTasks(query: TaskQuery): Promise<TaskPage>;
  /** Stored events after a sequence, in order. */
  readEvents(query: EventQuery): Promise<Event[]>;
  /** Counts by status and the last sequence. */
  stats(): Promise<StoreStats>;
  /** Checks the store answers; throws if it does not. */
  ping(): Promise<void>;
  /** Flushes and closes; the store is unusable afterwards. */
  close(): Promise<void>;
}
