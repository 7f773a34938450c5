/**
 * The storage seam: everything the services need from a store, and nothing that ties them to one
 * database. Every method that changes a task also appends the events describing the change in the
 * same transaction, so the task table and the event log never disagree; a method that resolved has
 * its change on disk. Every backend runs the same contract suite (server/test/store-contract.ts).
 */
import type {
  Event,
  HostSummary,
  Task,
  TaskAttempt,
  TaskPriority,
  TaskStatus,
  TaskStep,
} from "../../../gen/spage/core/common_pb.js";
import type { AuditFields } from "../domain/audit-chain.js";

/** A task as the store keeps it: the wire Task plus what only the gateway needs. */
export interface TaskRecord {
  /** The task as clients see it (hosts sorted by name). */
  readonly task: Task;
  /**
   * Fingerprint of the request that created the task, for idempotent re-submits; empty when the
   * gateway generated the id (the fingerprint is then taken from the stored task if needed).
   */
  readonly requestHash: string;
  /** Incremented by every update; conditional updates compare it. */
  readonly version: number;
  /** Insertion order, unique and increasing; orders the queue (within a priority) and listings. */
  readonly position: number;
  /** Highest `task.output` line number stored for the current attempt. */
  readonly outputSeq: number;
}

/** What a new task is made of. */
export interface NewTask {
  readonly id: string;
  readonly type: string;
  readonly priority: TaskPriority;
  readonly payload: Readonly<Record<string, string>>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly requestHash: string;
  /** Initial state: PENDING. */
  readonly status: TaskStatus;
  /** Run-time limit in seconds; 0 for none. */
  readonly timeoutSeconds: number;
  /** Lost-task policy: "fail" or "requeue". */
  readonly onLost?: string;
  /** Most attempts under the requeue policy. */
  readonly maxAttempts?: number;
  /**
   * "api" (default): submitted and queued for a daemon; "core": registered by the Spage core that
   * runs it, never queued.
   */
  readonly origin?: TaskOrigin;
  /** Who created it (Task.owner); "" when unknown. */
  readonly owner?: string;
  /** "play" for a play (Task.era); "" for a task-era run. */
  readonly era?: string;
  /** Task.workflow_id; "" for none. */
  readonly workflowId?: string;
  /**
   * Ids of stored tasks (or tasks created in the same createTasks call) it waits for; only
   * createTasks stores dependencies.
   */
  readonly dependsOn?: readonly string[];
  /** Longest chain of dependencies below it; 0 without any. */
  readonly depth?: number;
  /** Task.retry_of: the task this one retries. */
  readonly retryOf?: string;
  /** Task.limit_hosts. */
  readonly limitHosts?: readonly string[];
}

/** How a task came to be (Task.origin). */
export type TaskOrigin = "api" | "core";

/** An event to append: the store assigns id, sequence and timestamp. */
export interface NewEvent {
  readonly type: string;
  readonly taskId: string;
  readonly data: Readonly<Record<string, string>>;
}

/** A change to a task's fields. `null` clears an optional time. */
export interface TaskPatch {
  readonly status?: TaskStatus;
  readonly progress?: number;
  readonly payload?: Readonly<Record<string, string>>;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly result?: Readonly<Record<string, string>>;
  readonly error?: string;
  readonly hosts?: readonly HostSummary[];
  readonly steps?: readonly TaskStep[];
  readonly startedAt?: Date | null;
  readonly completedAt?: Date | null;
  readonly deadlineAt?: Date | null;
  readonly daemonId?: string;
  readonly attempt?: number;
  readonly attempts?: readonly TaskAttempt[];
  readonly cancelDeadline?: Date | null;
  readonly outputSeq?: number;
}

/** A daemon as the store keeps it. */
export interface DaemonRecord {
  readonly id: string;
  readonly hostname: string;
  readonly version: string;
  readonly capacity: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly connected: boolean;
  readonly connectedAt: Date;
  readonly lastSeen: Date;
  readonly disconnectedAt?: Date;
}

/** An active task whose daemon is gone (stream closed, or silent past its lease). */
export interface OrphanedTask {
  readonly record: TaskRecord;
  /** Since when the daemon counts as gone. */
  readonly goneSince: Date;
}

/** How the last progress stream of a core-only run ended, as the gateway holding it saw it. */
export type CoreStreamEnd = "closed" | "canceled" | "dropped";

/** An active core-only run (no daemon) with no open progress stream, or whose holder went quiet. */
export interface DisconnectedCoreRun {
  readonly record: TaskRecord;
  /** How its last stream ended; "stale" when the gateway holding it stopped renewing it. */
  readonly end: CoreStreamEnd | "stale";
  /** When the stream ended, or (stale) when it was last renewed. */
  readonly since: Date;
}

/** What a conditional update expects to find. */
export interface Expected {
  readonly status: TaskStatus;
  readonly version: number;
}

/** Listing order by creation (insertion position). */
export type ListOrder = "newest" | "oldest";

/** Filters and paging of a task listing. */
export interface TaskQuery {
  readonly limit: number;
  /** Matching tasks to skip; ignored when `afterPosition` is set. */
  readonly offset: number;
  readonly order: ListOrder;
  /** Keyset paging: only tasks past this position in `order`. */
  readonly afterPosition?: number;
  readonly status?: TaskStatus;
  readonly type?: string;
  readonly priority?: TaskPriority;
  readonly createdAfter?: Date;
  readonly createdBefore?: Date;
  readonly idPrefix?: string;
  readonly workflowId?: string;
  /** Only tasks whose metadata has this key with this value. */
  readonly label?: { readonly key: string; readonly value: string };
  /** Only tasks that have not ended (when `status` is not given). */
  readonly unfinished?: boolean;
}

/** The state of one dependency of a task. */
export interface DependencyState {
  readonly id: string;
  readonly status: TaskStatus;
  readonly depth: number;
}

/** What createTasks did: stored every task, or (an id was taken) none of them. */
export type CreatedTasks =
  | { readonly created: true; readonly records: TaskRecord[]; readonly events: Event[] }
  | { readonly created: false; readonly taken: TaskRecord[] };

/** A page of tasks and the event sequence it reflects. */
export interface TaskPage {
  readonly records: TaskRecord[];
  /** Matching tasks over all pages. */
  readonly total: number;
  /** Last committed event sequence when the page was read. */
  readonly sequence: bigint;
  /** Whether tasks follow this page. */
  readonly more: boolean;
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

/** Queue-wait and run times of recently finished tasks, in seconds. */
export interface RecentDurations {
  readonly queueSeconds: number[];
  readonly runSeconds: number[];
}

/** Persistence for tasks and their event log. Safe for concurrent callers. */
export interface TaskStore {
  /** Name of the backend, e.g. "sqlite". */
  readonly kind: string;
  /**
   * Inserts a task and its first event; returns the existing record untouched if the id is taken.
   * A task with dependencies goes through createTasks.
   * With `audit`, a created task's audit record is appended to the audit log in the same
   * transaction (nothing is appended when the id was taken).
   */
  createTask(
    task: NewTask,
    event: NewEvent,
    audit?: AuditFields,
  ): Promise<{ record: TaskRecord; created: boolean; events: Event[] }>;
  /**
   * Inserts several tasks, their first events (`events[i]` for `tasks[i]`) and audit records in one
   * transaction, all or none: when an id is taken, nothing is stored and the stored tasks with the
   * taken ids come back. Stores their dependencies too: each dependency (a stored task or one of
   * `tasks` before it) gets the new task appended to its `dependents`, without a version change.
   */
  createTasks(
    tasks: readonly NewTask[],
    events: readonly NewEvent[],
    audit?: readonly AuditFields[],
  ): Promise<CreatedTasks>;
  /** The states and depths of these tasks (missing ones are left out). */
  taskStates(ids: readonly string[]): Promise<DependencyState[]>;
  /**
   * WAITING tasks whose dependencies have all ended (or are missing), oldest first: the ones whose
   * resolution a crash or a lost race left undone.
   */
  settledWaiting(limit: number): Promise<TaskRecord[]>;
  /** The task with this id, if any, and the last committed sequence at the time of the read. */
  getTask(id: string): Promise<{ record: TaskRecord | undefined; sequence: bigint }>;
  /**
   * Applies `patch` if the task still has the expected status and version, and appends `events`.
   * Returns undefined when the task is missing or has moved on (the caller lost a race: re-read).
   * A patch that ends the task (a terminal status) also drops its core stream record.
   */
  updateTask(
    id: string,
    expected: Expected,
    patch: TaskPatch,
    events: readonly NewEvent[],
  ): Promise<{ record: TaskRecord; events: Event[] } | undefined>;
  /** Appends events that change no task field. */
  appendEvents(events: readonly NewEvent[]): Promise<Event[]>;
  /** A page of tasks. */
  listTasks(query: TaskQuery): Promise<TaskPage>;
  /** Stored events after a sequence, in order. */
  readEvents(query: EventQuery): Promise<Event[]>;
  /**
   * PENDING tasks of origin "api" in dispatch order: highest priority first, first in, first out
   * within one.
   */
  pendingQueue(limit: number): Promise<TaskRecord[]>;
  /** Tasks that are not PENDING, not ended, and whose deadline is at or before `now`. */
  dueDeadlines(now: Date, limit: number): Promise<TaskRecord[]>;
  /** CANCELING tasks whose cancel deadline is at or before `now`. */
  dueCancels(now: Date, limit: number): Promise<TaskRecord[]>;
  /** Tasks assigned to, running on or canceling on a daemon. */
  tasksOfDaemon(daemonId: string): Promise<TaskRecord[]>;
  /**
   * Active tasks (ASSIGNED, RUNNING, CANCELING) whose daemon is disconnected, unknown, or has not
   * been seen for `leaseMs`; core-only runs with a core stream record are not among them (see
   * `disconnectedCoreRuns`).
   */
  orphanedTasks(now: Date, leaseMs: number, limit: number): Promise<OrphanedTask[]>;
  /**
   * Records that a gateway holds a progress stream of each of these core-only runs now (the first
   * update of a stream, and renewals while it stays open).
   */
  coreStreamsOpen(taskIds: readonly string[]): Promise<void>;
  /** Records that the last progress stream of a core-only run ended now, and how. */
  coreStreamEnded(taskId: string, end: CoreStreamEnd): Promise<void>;
  /**
   * Active core-only runs (RUNNING or CANCELING, no daemon) whose core stream record says the
   * stream ended, or was last renewed before `staleBefore`.
   */
  disconnectedCoreRuns(staleBefore: Date, limit: number): Promise<DisconnectedCoreRun[]>;
  /** Records a daemon's hello: creates or updates it as connected now. */
  daemonConnected(
    daemon: Pick<DaemonRecord, "id" | "hostname" | "version" | "capacity" | "labels">,
  ): Promise<void>;
  /** Records that a daemon was heard from now. */
  daemonSeen(id: string): Promise<void>;
  /** Records that a daemon's stream closed now. */
  daemonDisconnected(id: string): Promise<void>;
  /** Daemons, connected first; with `includeDisconnected`, also those seen since `seenSince`. */
  listDaemons(includeDisconnected: boolean, seenSince: Date): Promise<DaemonRecord[]>;
  /** Counts by status and the last sequence. */
  stats(): Promise<StoreStats>;
  /** Queue-wait and run times of the most recently finished tasks (at most `limit`). */
  recentDurations(limit: number): Promise<RecentDurations>;
  /** Checks the store answers; throws if it does not. */
  ping(): Promise<void>;
  /**
   * Whether other processes write this store's events too (several gateways on one database):
   * then live events are read back from the event table instead of taken from this process's writes.
   */
  readonly shared?: boolean;
  /**
   * Calls `listener` when another process may have committed events (a wake-up only: the event
   * table is the truth, a lost call only delays); returns a function that stops it.
   */
  watchCommits?(listener: () => void): () => void;
  /**
   * Records that gateway `id` runs now; returns how many gateways share the store (those seen
   * since `liveSince`, this one included). Absent where one gateway has the store to itself.
   */
  replicaSeen?(id: string, liveSince: Date): Promise<number>;
  /**
   * Takes or renews the lease `name` for `holder` until `until`; true when `holder` holds it now
   * (it was free, ran out, or was already its own). Absent where one gateway has the store to itself.
   */
  claimLease?(name: string, holder: string, until: Date): Promise<boolean>;
  /** Finishes pending writes and closes; the store is unusable afterwards. */
  close(): Promise<void>;
}
