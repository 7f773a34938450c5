/**
 * Conversion between SQLite rows and the wire types.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type Event,
  type HostSummary,
  HostSummarySchema,
  type Task,
  type TaskAttempt,
  TaskAttemptSchema,
  TaskMetricsSchema,
  type TaskStep,
  TaskStepSchema,
} from "../../../gen/spage/core/common_pb.js";
import type { DaemonRecord, NewEvent, NewTask, TaskRecord } from "./task-store.js";

/** The columns of the tasks table, in the order every task read selects them. */
const taskColumnNames = [
  "position",
  "id",
  "type",
  "priority",
  "status",
  "progress",
  "payload",
  "metadata",
  "result",
  "error",
  "hosts",
  "timeout_seconds",
  "request_hash",
  "version",
  "created_at",
  "updated_at",
  "started_at",
  "completed_at",
  "deadline_at",
  "daemon_id",
  "attempt",
  "max_attempts",
  "on_lost",
  "attempts",
  "cancel_deadline",
  "output_seq",
  "origin",
  "owner",
  "era",
  "steps",
  "depends_on",
  "dependents",
  "workflow_id",
  "retry_of",
  "limit_hosts",
] as const;

/**
 * The select list of a task read, its columns prefixed with `alias.` when given. Task reads run as
 * raw statements (rows as arrays in this order): a row object with 28 named properties costs the
 * driver more than the read itself. Listings leave a play's steps out (`steps` false): they are
 * read with the one task.
 */
export const taskColumns = (alias = "", steps = true): string =>
  taskColumnNames
    .map((c) => (c === "steps" && !steps ? "'[]' AS steps" : alias ? `${alias}.${c}` : c))
    .join(", ");

/** Number of columns of a task row; columns a read selects after them start at this index. */
export const taskColumnCount = taskColumnNames.length;

/** A row of the tasks table, as a raw statement selecting `taskColumns()` returns it. */
export type TaskRow = readonly [
  position: number,
  id: string,
  type: string,
  priority: number,
  status: number,
  progress: number,
  payload: string,
  metadata: string,
  result: string,
  error: string,
  hosts: string,
  timeout_seconds: number,
  request_hash: string,
  version: number,
  created_at: number,
  updated_at: number,
  started_at: number | null,
  completed_at: number | null,
  deadline_at: number | null,
  daemon_id: string,
  attempt: number,
  max_attempts: number,
  on_lost: string,
  attempts: string,
  cancel_deadline: number | null,
  output_seq: number,
  origin: string,
  owner: string,
  era: string,
  steps: string,
  depends_on: string,
  dependents: string,
  workflow_id: string,
  retry_of: string,
  limit_hosts: string,
  ...more: unknown[],
];

/** The columns an insert into the tasks table sets; every other column takes its default. */
export interface NewTaskColumns {
  readonly id: string;
  readonly type: string;
  readonly priority: number;
  readonly status: number;
  readonly payload: string;
  readonly metadata: string;
  readonly request_hash: string;
  readonly timeout_seconds: number;
  readonly on_lost: string;
  readonly max_attempts: number;
  readonly origin: string;
  readonly owner: string;
  readonly era: string;
  readonly workflow_id: string;
  /** JSON list of ids. */
  readonly depends_on: string;
  readonly retry_of: string;
  /** JSON list of host names. */
  readonly limit_hosts: string;
  /** Longest chain of dependencies below the task (0 without any). */
  readonly depth: number;
  /** created_at and updated_at. */
  readonly now: number;
}

/** The columns an insert of `t` at `now` sets (the schema's defaults filled in here). */
export function newTaskColumns(t: NewTask, now: number): NewTaskColumns {
  return {
    id: t.id,
    type: t.type,
    priority: t.priority,
    status: t.status,
    payload: JSON.stringify(t.payload),
    metadata: JSON.stringify(t.metadata),
    request_hash: t.requestHash,
    timeout_seconds: t.timeoutSeconds,
    on_lost: t.onLost ?? "fail",
    max_attempts: t.maxAttempts ?? 3,
    origin: t.origin ?? "api",
    owner: t.owner ?? "",
    era: t.era ?? "",
    workflow_id: t.workflowId ?? "",
    depends_on: JSON.stringify(t.dependsOn ?? []),
    retry_of: t.retryOf ?? "",
    limit_hosts: JSON.stringify(t.limitHosts ?? []),
    depth: t.depth ?? 0,
    now,
  };
}

/**
 * The record of the task a successful insert of `c` stored at `position` (the inserted columns and
 * the schema's defaults for the rest), built from what was inserted rather than read and parsed
 * back; equal to `rowToRecord` of the stored row (the store contract compares the created record
 * with the one read back).
 */
export function newTaskRecord(
  c: NewTaskColumns,
  t: Pick<NewTask, "payload" | "metadata" | "dependsOn" | "limitHosts">,
  position: number,
): TaskRecord {
  const { payload, metadata } = t;
  const task: Task = {
    $typeName: "spage.core.Task",
    id: c.id,
    type: c.type,
    priority: c.priority,
    payload: { ...payload },
    status: c.status,
    progress: 0,
    result: {},
    error: "",
    createdAt: timestampFromMs(c.now),
    updatedAt: timestampFromMs(c.now),
    hosts: [],
    timeoutSeconds: c.timeout_seconds,
    metadata: { ...metadata },
    daemonId: "",
    attempt: 0,
    maxAttempts: c.max_attempts,
    onLost: c.on_lost,
    attempts: [],
    origin: c.origin,
    owner: c.owner,
    steps: [],
    era: c.era,
    dependsOn: [...(t.dependsOn ?? [])],
    dependents: [],
    workflowId: c.workflow_id,
    retryOf: c.retry_of,
    limitHosts: [...(t.limitHosts ?? [])],
  };
  return { task, requestHash: c.request_hash, version: 1, position, outputSeq: 0 };
}

/**
 * Fills in `dependents` of records created together (createTasks): a task of the batch that another
 * of it depends on has that one among its dependents, as stored.
 */
export function linkBatchDependents(records: readonly TaskRecord[]): void {
  const byId = new Map(records.map((r) => [r.task.id, r]));
  for (const r of records) for (const dep of r.task.dependsOn) byId.get(dep)?.task.dependents.push(r.task.id);
}

/** A row of the daemons table. */
export interface DaemonRow {
  id: string;
  hostname: string;
  version: string;
  capacity: number;
  labels: string;
  connected: number;
  connected_at: number;
  last_seen: number;
  disconnected_at: number | null;
}

/** A row of the events table. */
export interface EventRow {
  sequence: number;
  type: string;
  task_id: string;
  data: string;
  created_at: number;
}

/** Host summaries as stored: plain objects with the HostSummary field names. */
export type StoredHost = Omit<HostSummary, "$typeName" | "$unknown">;

/** Serialises host summaries for the hosts column. */
export function hostsToJson(hosts: readonly HostSummary[]): string {
  return JSON.stringify(
    hosts.map((h) => ({
      host: h.host,
      ok: h.ok,
      failed: h.failed,
      skipped: h.skipped,
      running: h.running,
      lastError: h.lastError,
      failedTask: h.failedTask,
      currentTask: h.currentTask,
    })),
  );
}

/** Builds a TaskRecord from a row. */
export function rowToRecord(row: TaskRow): TaskRecord {
  const [
    position,
    id,
    type,
    priority,
    status,
    progress,
    payload,
    metadata,
    result,
    error,
    hosts,
    timeoutSeconds,
    requestHash,
    version,
    createdAt,
    updatedAt,
    startedAt,
    completedAt,
    deadlineAt,
    daemonId,
    attempt,
    maxAttempts,
    onLost,
    attempts,
    cancelDeadline,
    outputSeq,
    origin,
    owner,
    era,
    steps,
    dependsOn,
    dependents,
    workflowId,
    retryOf,
    limitHosts,
  ] = row;
  const task: Task = {
    $typeName: "spage.core.Task",
    id,
    type,
    priority,
    payload: JSON.parse(payload) as Record<string, string>,
    status,
    progress,
    result: JSON.parse(result) as Record<string, string>,
    error,
    createdAt: timestampFromMs(createdAt),
    updatedAt: timestampFromMs(updatedAt),
    hosts: hosts === "[]" ? [] : (JSON.parse(hosts) as StoredHost[]).map((h) => create(HostSummarySchema, h)),
    timeoutSeconds,
    metadata: JSON.parse(metadata) as Record<string, string>,
    daemonId,
    attempt,
    maxAttempts,
    onLost,
    attempts: attempts === "[]" ? [] : (JSON.parse(attempts) as StoredAttempt[]).map(attemptFromJson),
    origin,
    owner,
    steps: steps === "[]" ? [] : stepsFromJson(steps),
    era,
    dependsOn: dependsOn === "[]" ? [] : (JSON.parse(dependsOn) as string[]),
    dependents: dependents === "[]" ? [] : (JSON.parse(dependents) as string[]),
    workflowId,
    retryOf,
    limitHosts: limitHosts === "[]" ? [] : (JSON.parse(limitHosts) as string[]),
  };
  // Unset message fields stay absent, as protobuf's create leaves them.
  if (startedAt !== null) task.startedAt = timestampFromMs(startedAt);
  if (completedAt !== null) task.completedAt = timestampFromMs(completedAt);
  if (deadlineAt !== null) task.deadlineAt = timestampFromMs(deadlineAt);
  if (cancelDeadline !== null) task.cancelDeadline = timestampFromMs(cancelDeadline);
  return { task, requestHash, version, position, outputSeq };
}

/** An attempt as stored: times in milliseconds. */
interface StoredAttempt {
  number: number;
  daemonId: string;
  assignedAt?: number;
  startedAt?: number;
  endedAt?: number;
  outcome: string;
  error: string;
}

function attemptFromJson(a: StoredAttempt): TaskAttempt {
  return create(TaskAttemptSchema, {
    number: a.number,
    daemonId: a.daemonId,
    assignedAt: a.assignedAt === undefined ? undefined : timestampFromMs(a.assignedAt),
    startedAt: a.startedAt === undefined ? undefined : timestampFromMs(a.startedAt),
    endedAt: a.endedAt === undefined ? undefined : timestampFromMs(a.endedAt),
    outcome: a.outcome,
    error: a.error,
  });
}

/** Serialises attempts for the attempts column. */
export function attemptsToJson(attempts: readonly TaskAttempt[]): string {
  return JSON.stringify(
    attempts.map(
      (a): StoredAttempt => ({
        number: a.number,
        daemonId: a.daemonId,
        assignedAt: a.assignedAt ? timestampMs(a.assignedAt) : undefined,
        startedAt: a.startedAt ? timestampMs(a.startedAt) : undefined,
        endedAt: a.endedAt ? timestampMs(a.endedAt) : undefined,
        outcome: a.outcome,
        error: a.error,
      }),
    ),
  );
}

/** Builds a DaemonRecord from a row. */
export function rowToDaemon(row: DaemonRow): DaemonRecord {
  return {
    id: row.id,
    hostname: row.hostname,
    version: row.version,
    capacity: row.capacity,
    labels: JSON.parse(row.labels) as Record<string, string>,
    connected: row.connected === 1,
    connectedAt: new Date(row.connected_at),
    lastSeen: new Date(row.last_seen),
    disconnectedAt: row.disconnected_at === null ? undefined : new Date(row.disconnected_at),
  };
}

/** The event just stored at `sequence`, built from what was inserted (equal to rowToEvent of its row). */
export function newEvent(sequence: number, e: NewEvent, now: number): Event {
  return {
    $typeName: "spage.core.Event",
    id: `evt-${sequence}`,
    type: e.type,
    data: { ...e.data },
    timestamp: timestampFromMs(now),
    sequence: BigInt(sequence),
    taskId: e.taskId,
  };
}

/** Builds an Event from a row. */
export function rowToEvent(row: EventRow): Event {
  const data = JSON.parse(row.data) as Record<string, string>;
  return newEvent(row.sequence, { type: row.type, taskId: row.task_id, data }, row.created_at);
}

/** A step as stored: times in milliseconds, metrics as a plain object. */
interface StoredStep {
  number: number;
  name: string;
  status: number;
  output: string;
  error: string;
  duration: number;
  metrics?: Record<string, number>;
  startedAt?: number;
  completedAt?: number;
  updatedAt?: number;
}

/** Serialises a play's steps for the steps column. */
export function stepsToJson(steps: readonly TaskStep[]): string {
  return JSON.stringify(
    steps.map(
      (s): StoredStep => ({
        number: s.number,
        name: s.name,
        status: s.status,
        output: s.output,
        error: s.error,
        duration: s.duration,
        metrics: s.metrics
          ? {
              duration: s.metrics.duration,
              memoryAlloc: s.metrics.memoryAlloc,
              memoryHeap: s.metrics.memoryHeap,
              memorySys: s.metrics.memorySys,
              memoryHeapSys: s.metrics.memoryHeapSys,
              gcCycles: s.metrics.gcCycles,
              goroutines: s.metrics.goroutines,
              cpuCount: s.metrics.cpuCount,
            }
          : undefined,
        startedAt: s.startedAt ? timestampMs(s.startedAt) : undefined,
        completedAt: s.completedAt ? timestampMs(s.completedAt) : undefined,
        updatedAt: s.updatedAt ? timestampMs(s.updatedAt) : undefined,
      }),
    ),
  );
}

function stepsFromJson(json: string): TaskStep[] {
  return (JSON.parse(json) as StoredStep[]).map((s) =>
    create(TaskStepSchema, {
      number: s.number,
      name: s.name,
      status: s.status,
      output: s.output,
      error: s.error,
      duration: s.duration,
      metrics: s.metrics ? create(TaskMetricsSchema, s.metrics) : undefined,
      startedAt: s.startedAt === undefined ? undefined : timestampFromMs(s.startedAt),
      completedAt: s.completedAt === undefined ? undefined : timestampFromMs(s.completedAt),
      updatedAt: s.updatedAt === undefined ? undefined : timestampFromMs(s.updatedAt),
    }),
  );
}
