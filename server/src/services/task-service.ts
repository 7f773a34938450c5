/**
 * Task operations shared by SpageExecution and SpageAPI: submit, register, read, list, cancel,
 * progress and results. Validates input, goes through the state machine for every status change,
 * writes through the TaskStore with conditional updates (re-reading when another writer won) and
 * publishes what was committed on the event bus.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Event, Task, TaskResult } from "../../../gen/spage/core/common_pb.js";
import { TaskPriority, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { AlreadyExistsError, DomainError, FailedPreconditionError, NotFoundError } from "../domain/errors.js";
import { failureSummary, recapResult } from "../domain/run-outcome.js";
import { applyStep, classifyUpdate, overallProgress, runEndOf, runErrorOf } from "../domain/run-progress.js";
import { newTaskId } from "../domain/task-id.js";
import { type Actor, checkOwnerAccess } from "../domain/task-owner.js";
import { statusName, terminalStates } from "../domain/task-state.js";
import {
  checkLostPolicy,
  checkPriority,
  checkReason,
  checkStringMap,
  checkTaskId,
  checkTaskType,
  checkTimeout,
  checkTimestamp,
  defaultMaxAttempts,
  effectivePriority,
  requestFingerprint,
  type SubmittedFields,
  submitFingerprint,
  Violations,
} from "../domain/task-validation.js";
import type { EventBus } from "../events/event-bus.js";
import type { NewEvent, NewTask, TaskPatch, TaskRecord, TaskStore } from "../store/task-store.js";
import { currentTraceparent } from "../tracing/active-tracer.js";
import type { AuditInWrite } from "./audit-log.js";
import { type ListInput, parseListInput } from "./list-query.js";
import { encodePageToken } from "./page-token.js";
import { chainChanges, statusChange } from "./status-change.js";
import { expectedOf, type TaskWriter } from "./task-writer.js";

/** A request to create a task. */
export interface SubmitInput {
  readonly taskId: string;
  readonly type: string;
  readonly priority: TaskPriority;
  readonly payload: Readonly<Record<string, string>>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly timeoutSeconds?: number;
  /** Lost-task policy: "" or "fail" (default), or "requeue". */
  readonly onLost?: string;
  /** Most attempts under the requeue policy; 0 for the default. */
  readonly maxAttempts?: number;
  /** "play" for a play (ExecutePlay); "" for a task-era task. */
  readonly era?: string;
  /** Workflow to put it in; "" for none. */
  readonly workflowId?: string;
  /** Ids it waits for (checked by the caller: WorkflowService). */
  readonly dependsOn?: readonly string[];
  /** Longest chain of dependencies below it (computed by the caller). */
  readonly depth?: number;
  /** The task it retries. */
  readonly retryOf?: string;
  /** Hosts the run is limited to. */
  readonly limitHosts?: readonly string[];
}

/** A Spage core's registration of a run. */
export interface RegisterInput {
  readonly taskId: string;
  readonly playbook: string;
  readonly inventory: string;
  readonly variables: Readonly<Record<string, string>>;
  readonly engine: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** "play" for a play (RegisterPlay, or a play's first update); "" for a task-era run. */
  readonly era?: string;
}

/** One progress report of a runner. */
export interface ProgressInput {
  readonly taskId: string;
  readonly progress: number;
  readonly message: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/** How many times a registration is retried after losing a race. */
const maxRaceRetries = 16;

/** Outcomes a runner may report as a task's final state. */
const reportableOutcomes: ReadonlySet<TaskStatus> = new Set([
  TaskStatus.COMPLETED,
  TaskStatus.FAILED,
  TaskStatus.CANCELED,
  TaskStatus.TIMED_OUT,
]);

/** The task operations. */
export class TaskService {
  private readonly store: TaskStore;
  private readonly bus: EventBus;

  constructor(
    private readonly writer: TaskWriter,
    private readonly options: { readonly cancelGraceMs: number } = { cancelGraceMs: 30_000 },
  ) {
    this.store = writer.store;
    this.bus = writer.bus;
  }

  /** Creates a task, or returns the existing one for an identical retry. */
  async submit(
    input: SubmitInput,
    audit?: AuditInWrite,
    actor?: Actor,
  ): Promise<{ task: Task; created: boolean }> {
    const v = new Violations();
    const prepared = prepareSubmit(v, input, actor);
    v.throwIfAny();
    const { task: t, event, fingerprint } = prepared;
    const { record, created, events } = await this.store.createTask(t, event, audit?.fields(t.id));
    if (created) audit?.markWritten();
    if (!created && storedFingerprint(record) !== fingerprint) {
      throw new AlreadyExistsError(
        `task ${t.id} already exists with different contents; choose another task_id`,
        {
          task_id: t.id,
        },
      );
    }
    this.bus.publish(events);
    return { task: record.task, created };
  }

  /** Creates a playbook task from ExecuteTask's fields. */
  async execute(
    input: {
      taskId: string;
      playbook: string;
      inventory: string;
      variables: Readonly<Record<string, string>>;
      engine: string;
      priority: TaskPriority;
      metadata: Readonly<Record<string, string>>;
    },
    audit?: AuditInWrite,
    actor?: Actor,
  ): Promise<{ task: Task; created: boolean }> {
    const v = new Violations();
    if (input.playbook.trim() === "") v.add("playbook", "is required (path or name of the playbook)");
    checkStringMap(v, "variables", input.variables);
    v.throwIfAny();
    return this.submit(
      {
        taskId: input.taskId,
        type: "playbook",
        priority: input.priority,
        payload: playbookPayload(input),
        metadata: input.metadata,
      },
      audit,
      actor,
    );
  }

  /**
   * Creates or updates the task of a core's run. A later registration only fills what is empty:
   * empty fields keep what is stored (a core's second registration carries only the playbook), and
   * a playbook, inventory, engine or variable that differs from the stored one is refused
   * (FailedPrecondition), whoever calls. A caller without credentials may only re-register runs
   * an anonymous core registered.
   */
  async register(input: RegisterInput, actor?: Actor): Promise<Task> {
    const v = new Violations();
    checkTaskId(v, "task_id", input.taskId, true);
    checkStringMap(v, "variables", input.variables);
    checkStringMap(v, "metadata", input.metadata);
    v.throwIfAny();

    for (let attempt = 0; attempt < maxRaceRetries; attempt++) {
      const { record } = await this.store.getTask(input.taskId);
      if (!record) {
        const created = await this.registerNew(input, actor);
        if (!created) continue; // registered concurrently: merge into it
        return created;
      }
      checkOwnerAccess(actor, record.task, "re-register");
      const res = await this.store.updateTask(
        input.taskId,
        expectedOf(record),
        mergeRegistration(record, input),
        [{ type: "task.registered", taskId: input.taskId, data: registeredData(input) }],
      );
      if (!res) continue;
      this.bus.publish(res.events);
      return res.record.task;
    }
    throw new FailedPreconditionError(`task ${input.taskId} changed too often while registering; retry`);
  }

  /**
   * Creates the task of a core's run unless one with its id exists; returns it when created here.
   * The input is not validated again (callers have).
   */
  async registerNew(input: RegisterInput, actor?: Actor): Promise<Task | undefined> {
    const { record, created, events } = await this.store.createTask(
      {
        id: input.taskId,
        type: "playbook",
        priority: TaskPriority.NORMAL,
        payload: playbookPayload(input),
        metadata: input.metadata,
        requestHash: requestFingerprint({ registered: input.taskId }),
        status: TaskStatus.PENDING,
        timeoutSeconds: 0,
        origin: "core",
        owner: actor?.owner ?? "",
        era: input.era ?? "",
      },
      { type: "task.registered", taskId: input.taskId, data: registeredData(input) },
    );
    if (!created) return undefined;
    this.bus.publish(events);
    return record.task;
  }

  /**
   * The task with this id and the event sequence the answer reflects. A caller without
   * credentials may only read runs an anonymous core registered.
   */
  async get(taskId: string, actor?: Actor): Promise<{ task: Task; sequence: bigint }> {
    const v = new Violations();
    checkTaskId(v, "task_id", taskId, true);
    v.throwIfAny();
    const { record, sequence } = await this.store.getTask(taskId);
    if (!record) throw new NotFoundError(`task ${taskId} not found`, { task_id: taskId });
    checkOwnerAccess(actor, record.task, "read");
    return { task: record.task, sequence };
  }

  /** A page of tasks. */
  async list(
    input: ListInput,
  ): Promise<{ tasks: Task[]; total: number; sequence: bigint; nextPageToken: string }> {
    const { query, fingerprint } = parseListInput(input);
    const page = await this.store.listTasks(query);
    const last = page.records[page.records.length - 1];
    return {
      tasks: page.records.map((r) => r.task),
      total: page.total,
      sequence: page.sequence,
      nextPageToken: page.more && last ? encodePageToken(last.position, query.order, fingerprint) : "",
    };
  }

  /**
   * Cancels a task: PENDING or WAITING ends CANCELED at once, ASSIGNED or RUNNING become CANCELING, an already
   * CANCELING task is accepted again, anything that has ended is FailedPrecondition.
   */
  async cancel(taskId: string, reason: string): Promise<Task> {
    const v = new Violations();
    checkTaskId(v, "task_id", taskId, true);
    checkReason(v, "reason", reason);
    v.throwIfAny();
    const { record } = await this.writer.mutate(taskId, (rec) => {
      const from = rec.task.status;
      if (from === TaskStatus.CANCELING) return undefined;
      if (terminalStates.has(from)) {
        throw new FailedPreconditionError(
          `task ${taskId} already ended as ${statusName(from)}; nothing to cancel`,
          {
            task_id: taskId,
            status: statusName(from),
          },
        );
      }
      // Nothing runs a queued or waiting task yet: it ends at once.
      const to =
        from === TaskStatus.PENDING || from === TaskStatus.WAITING
          ? TaskStatus.CANCELED
          : TaskStatus.CANCELING;
      return statusChange(
        rec,
        to,
        { reason: reason || "canceled" },
        to === TaskStatus.CANCELED
          ? { error: reason || "canceled" }
          : {
              cancelDeadline: new Date(Date.now() + this.options.cancelGraceMs),
              error: reason || "canceled",
            },
      );
    });
    return record.task;
  }

  /**
   * Records one progress update: updates the per-host summary and overall progress, keeps the run's
   * own error (an error report), makes a waiting task RUNNING, ends the run when the update carries
   * `run_status`, and stores it as an event. An update of a run that has ended is stored as an event
   * and changes nothing. A caller without credentials may only report on runs an anonymous core
   * registered. Returns the stored events (the progress event among them) and the task.
   */
  async recordProgress(
    input: ProgressInput,
    actor?: Actor,
  ): Promise<{ events: Event[]; record: TaskRecord }> {
    const v = new Violations();
    checkTaskId(v, "task_id", input.taskId, true);
    checkStringMap(v, "metadata", input.metadata);
    if (!Number.isFinite(input.progress)) v.add("progress", "must be a finite number");
    v.throwIfAny();
    const step = classifyUpdate(input.progress, input.metadata);
    const runError = runErrorOf(step, input.message);
    const runEnd = runEndOf(input.metadata);
    const progressEvent: NewEvent = {
      type: "task.progress",
      taskId: input.taskId,
      data: {
        progress: String(input.progress),
        message: input.message,
        outcome: step.outcome,
        ...pick(input.metadata, [
          "task",
          "host",
          "status",
          "level",
          "duration_ms",
          "error",
          "run_status",
          "exit_code",
        ]),
      },
    };
    return this.writer.mutate(
      input.taskId,
      (rec) => {
        checkOwnerAccess(actor, rec.task, "report progress on");
        if (terminalStates.has(rec.task.status)) {
          // A late update of an ended run is kept as history and changes nothing.
          return { patch: {}, events: [progressEvent] };
        }
        const events: NewEvent[] = [];
        let status = rec.task.status;
        const hosts = applyStep(rec.task.hosts, step);
        const patch: { -readonly [K in keyof TaskPatch]: TaskPatch[K] } = {
          hosts,
          progress: overallProgress(hosts),
        };
        // The run's own error is kept while it runs (a CANCELING task's error is its cancel reason).
        if (runError && status !== TaskStatus.CANCELING && rec.task.error === "") patch.error = runError;
        const move = (to: TaskStatus, extra: Record<string, string>, more: TaskPatch = {}) => {
          const now = { ...rec, task: { ...rec.task, status, hosts } as Task };
          const change = statusChange(now, to, extra, more);
          Object.assign(patch, change.patch);
          events.push(...change.events);
          status = to;
        };
        if (status === TaskStatus.PENDING || status === TaskStatus.ASSIGNED) move(TaskStatus.RUNNING, {});
        events.push(progressEvent);
        if (runEnd) {
          const to = runEnd.status === "completed" ? TaskStatus.COMPLETED : TaskStatus.FAILED;
          const error =
            runEnd.error ||
            (to === TaskStatus.FAILED ? failureSummary(hosts, patch.error ?? rec.task.error) : "");
          const result = recapResult(hosts);
          if (input.metadata.exit_code) result.exit_code = input.metadata.exit_code;
          move(to, runEnd.error ? { error: runEnd.error } : {}, { error, result });
        }
        return { patch, events };
      },
      `task ${input.taskId} not found; call RegisterTask first`,
    );
  }

  /** Records a runner's final TaskResult; repeating the same outcome is accepted. */
  async reportResult(result: TaskResult): Promise<{ task: Task; sequence: bigint }> {
    const v = new Violations();
    checkTaskId(v, "task_id", result.taskId, true);
    if (!reportableOutcomes.has(result.status)) {
      v.add("status", "must be COMPLETED, FAILED, CANCELED or TIMED_OUT");
    }
    checkStringMap(v, "result", result.result);
    if (Buffer.byteLength(result.output) > 64 * 1024) v.add("output", "must be at most 65536 bytes");
    checkTimestamp(v, "started_at", result.startedAt);
    checkTimestamp(v, "completed_at", result.completedAt);
    v.throwIfAny();
    const outcome = result.status;
    const { record, events } = await this.writer.mutate(result.taskId, (rec) => {
      const from = rec.task.status;
      if (from === outcome) return undefined;
      if (terminalStates.has(from)) {
        throw new FailedPreconditionError(
          `task ${result.taskId} already ended as ${statusName(from)}; cannot report ${statusName(outcome)}`,
          { task_id: result.taskId, status: statusName(from) },
        );
      }
      const resultMap: Record<string, string> = { ...result.result, exit_code: String(result.exitCode) };
      if (result.output) resultMap.output = result.output;
      const more: TaskPatch = {
        result: resultMap,
        error: result.error,
        ...(result.completedAt ? { completedAt: timestampDate(result.completedAt) } : {}),
      };
      if (from === TaskStatus.PENDING || from === TaskStatus.ASSIGNED) {
        return chainChanges(
          rec,
          {
            to: TaskStatus.RUNNING,
            more: result.startedAt ? { startedAt: timestampDate(result.startedAt) } : {},
          },
          { to: outcome, extra: result.error ? { error: result.error } : {}, more },
        );
      }
      return statusChange(rec, outcome, result.error ? { error: result.error } : {}, more);
    });
    const last = events[events.length - 1];
    return {
      task: record.task,
      sequence: last?.sequence ?? (await this.store.getTask(result.taskId)).sequence,
    };
  }

  /** Ends every task whose deadline has passed as TIMED_OUT; returns how many. */
  async expireDeadlines(now = new Date()): Promise<number> {
    const due = await this.store.dueDeadlines(now, 100);
    let n = 0;
    for (const rec of due) {
      try {
        await this.writer.mutate(rec.task.id, (cur) => {
          if (terminalStates.has(cur.task.status) || cur.task.status === TaskStatus.PENDING) return undefined;
          const deadline = cur.task.deadlineAt ? timestampDate(cur.task.deadlineAt) : undefined;
          if (!deadline || deadline > now) return undefined;
          const message = `timed out after ${cur.task.timeoutSeconds}s`;
          return statusChange(cur, TaskStatus.TIMED_OUT, { reason: message }, { error: message });
        });
        n++;
      } catch (err) {
        // A task that moved on meanwhile (or vanished) is simply skipped.
        if (!(err instanceof DomainError)) throw err;
      }
    }
    return n;
  }
}

/**
 * The fingerprint of the request that created a task: as stored, or, for a task whose id the
 * gateway generated (stored without one), taken from the fields that request set.
 */
/** A validated submit request: the task to store, its first event and its request fingerprint. */
export interface PreparedTask {
  readonly task: NewTask;
  readonly event: NewEvent;
  /** Compared with a stored task's fingerprint (storedFingerprint) on an id already taken. */
  readonly fingerprint: string;
}

/**
 * Validates a submit request (violations go to `v`) and builds what to store: the id generated
 * when empty, defaults filled in, WAITING with dependencies and PENDING without.
 */
export function prepareSubmit(v: Violations, input: SubmitInput, actor?: Actor): PreparedTask {
  checkTaskId(v, "task_id", input.taskId, false);
  checkTaskType(v, "type", input.type);
  checkPriority(v, "priority", input.priority);
  checkStringMap(v, "payload", input.payload);
  checkStringMap(v, "metadata", input.metadata);
  checkTimeout(v, "timeout_seconds", input.timeoutSeconds ?? 0);
  checkLostPolicy(v, input.onLost ?? "", input.maxAttempts ?? 0);
  checkTaskId(v, "workflow_id", input.workflowId ?? "", false);
  const onLost = input.onLost || "fail";
  const maxAttempts = input.maxAttempts || defaultMaxAttempts;
  const priority = effectivePriority(input.priority);
  const timeoutSeconds = input.timeoutSeconds ?? 0;
  const dependsOn = input.dependsOn ?? [];
  const request: SubmittedFields = {
    type: input.type,
    priority,
    payload: input.payload,
    metadata: input.metadata,
    timeoutSeconds,
    onLost,
    maxAttempts,
    dependsOn,
    workflowId: input.workflowId,
    retryOf: input.retryOf,
    limitHosts: input.limitHosts,
  };
  // Only an id the client chose can come back in a blind retry. A generated id is first known
  // from this answer, so its fingerprint is taken from the stored task if it is ever reused.
  const fingerprint = submitFingerprint(request);
  const id = input.taskId || newTaskId();
  const status = dependsOn.length > 0 ? TaskStatus.WAITING : TaskStatus.PENDING;
  const data: Record<string, string> = {
    type: input.type,
    priority: TaskPriority[priority] ?? "NORMAL",
    status: statusName(status),
  };
  if (input.workflowId) data.workflow_id = input.workflowId;
  if (dependsOn.length > 0) data.depends_on = dependsOn.join(",");
  if (input.retryOf) data.retry_of = input.retryOf;
  if (input.limitHosts && input.limitHosts.length > 0) data.limit = input.limitHosts.join(",");
  // While tracing, the task keeps the submitting call's span as `metadata.traceparent`, which its
  // daemon receives with the assignment (unless the client chose a traceparent of its own). The
  // stored metadata then differs from the request's, so the request's fingerprint is kept too.
  const traceparent = input.metadata.traceparent === undefined ? currentTraceparent() : undefined;
  const metadata = traceparent ? { ...input.metadata, traceparent } : input.metadata;
  return {
    task: {
      id,
      type: input.type,
      priority,
      payload: input.payload,
      metadata,
      requestHash: input.taskId || traceparent ? fingerprint : "",
      status,
      timeoutSeconds,
      onLost,
      maxAttempts,
      owner: actor?.owner ?? "",
      era: input.era ?? "",
      workflowId: input.workflowId ?? "",
      dependsOn,
      depth: input.depth ?? 0,
      retryOf: input.retryOf ?? "",
      limitHosts: input.limitHosts ?? [],
    },
    event: { type: "task.submitted", taskId: id, data },
    fingerprint,
  };
}

/** The request fingerprint of a stored task. */
export function storedFingerprint(record: TaskRecord): string {
  return record.requestHash || submitFingerprint(record.task);
}

/** The payload of a playbook task: playbook, inventory, engine and variables (as JSON). */
export function playbookPayload(input: {
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

function registeredData(input: RegisterInput): Record<string, string> {
  const data: Record<string, string> = {};
  if (input.playbook) data.playbook = input.playbook;
  if (input.engine) data.engine = input.engine;
  return data;
}

/**
 * A later registration over what is stored: a field or map entry it leaves empty keeps its value
 * (a core's second registration carries only the playbook, and may carry empty metadata values);
 * metadata only fills keys that are empty. A playbook, inventory, engine or variable that differs
 * from the stored one is refused: a registration never rewrites a run.
 */
function mergeRegistration(existing: TaskRecord, input: RegisterInput): TaskPatch {
  const payload = { ...existing.task.payload };
  const conflicts: string[] = [];
  const fill = (key: "playbook" | "inventory" | "engine", value: string) => {
    if (!value) return;
    const stored = payload[key];
    if (stored && stored !== value) conflicts.push(`${key} "${value}" (registered: "${stored}")`);
    else payload[key] = value;
  };
  fill("playbook", input.playbook);
  fill("inventory", input.inventory);
  fill("engine", input.engine);
  const variables = nonEmpty(input.variables);
  if (Object.keys(variables).length > 0) {
    let vars: Record<string, unknown> = {};
    try {
      vars = JSON.parse(payload.variables ?? "{}") as Record<string, unknown>;
    } catch {
      vars = {};
    }
    for (const [k, value] of Object.entries(variables)) {
      const stored = vars[k];
      if (stored !== undefined && stored !== null && stored !== "" && String(stored) !== value) {
        conflicts.push(`variables.${k} "${value}" (registered: "${String(stored)}")`);
      } else vars[k] = value;
    }
    payload.variables = JSON.stringify(vars);
  }
  if (conflicts.length > 0) {
    throw new FailedPreconditionError(
      `task ${existing.task.id} is registered with other contents: ${conflicts.join(", ")}; a registration may only fill what is empty`,
      { task_id: existing.task.id },
    );
  }
  const metadata = { ...existing.task.metadata };
  for (const [k, value] of Object.entries(nonEmpty(input.metadata))) if (!metadata[k]) metadata[k] = value;
  return { payload, metadata };
}

/** The entries of a map whose value is not empty. */
export function nonEmpty(map: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(map)) if (val !== "") out[k] = val;
  return out;
}

function pick(map: Readonly<Record<string, string>>, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) {
    const val = map[k];
    if (val !== undefined && val !== "") out[k] = val;
  }
  return out;
}
