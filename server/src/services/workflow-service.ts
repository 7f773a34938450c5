/**
 * Operations on many tasks and on task graphs: submitting tasks with dependencies (one, or a whole
 * workflow at once, atomically), cancelling by ids or by a filter, and retrying a finished task
 * (optionally only on its failed hosts). Each task still goes through TaskService's checks and the
 * state machine; dependencies are checked in domain/task-graph.ts and resolved by
 * services/dependencies.ts.
 */
import type { CancelTaskOutcome, CancelTasksRequest } from "../../../gen/spage/api/tasks_pb.js";
import { type Task, TaskPriority, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { AlreadyExistsError, DomainError, FailedPreconditionError, NotFoundError } from "../domain/errors.js";
import { checkGraph, graphLimits } from "../domain/task-graph.js";
import { newTaskId } from "../domain/task-id.js";
import type { Actor } from "../domain/task-owner.js";
import { parseStatusName, statusName, terminalStates } from "../domain/task-state.js";
import { checkReason, checkTaskId, taskLimits, Violations } from "../domain/task-validation.js";
import type { TaskQuery, TaskRecord, TaskStore } from "../store/task-store.js";
import type { AuditInWrite } from "./audit-log.js";
import type { DependencyResolver } from "./dependencies.js";
import { parseLabelFilter } from "./label-filter.js";
import { prepareSubmit, type SubmitInput, storedFingerprint, type TaskService } from "./task-service.js";
import type { TaskWriter } from "./task-writer.js";

/** Bounds of CancelTasks. */
export const cancelLimits = { defaultLimit: 100, maxLimit: 1000, maxIds: 1000 } as const;

/** One task of a workflow as SubmitTasks receives it. */
export type WorkflowTaskInput = SubmitInput & { readonly dependsOn: readonly string[] };

/** What a batch cancel did. */
export interface CancelBatch {
  readonly matched: number;
  readonly canceled: number;
  readonly remaining: number;
  readonly dryRun: boolean;
  readonly results: Omit<CancelTaskOutcome, "$typeName" | "$unknown">[];
  /** The filter or ids, as the audit record names them. */
  readonly description: string;
}

/** Task graphs and batches. */
export class WorkflowService {
  private readonly store: TaskStore;

  constructor(
    private readonly tasks: TaskService,
    private readonly writer: TaskWriter,
    private readonly resolver: DependencyResolver,
  ) {
    this.store = writer.store;
  }

  /**
   * Stores `inputs` at once, all or none. `single` is SubmitTask with dependencies: violations then
   * name plain fields. Idempotent: the same request again returns the same tasks.
   */
  async submitMany(
    inputs: readonly WorkflowTaskInput[],
    workflowIdIn: string,
    opts: { audit?: AuditInWrite; actor?: Actor; single?: boolean } = {},
  ): Promise<{ tasks: Task[]; workflowId: string; created: boolean }> {
    const v = new Violations();
    if (!opts.single) {
      if (inputs.length === 0) v.add("tasks", "at least one task is required");
      if (inputs.length > graphLimits.maxBatch)
        v.add("tasks", `at most ${graphLimits.maxBatch} tasks in one call (got ${inputs.length})`);
      checkTaskId(v, "workflow_id", workflowIdIn, false);
    }
    v.throwIfAny();
    const workflowId = opts.single ? workflowIdIn : workflowIdIn || newTaskId();
    const within = (i: number) => (opts.single ? v : v.within(`tasks[${i}].`));
    const ids = new Map<string, number>();
    inputs.forEach((input, i) => {
      if (!opts.single && input.workflowId && input.workflowId !== workflowId)
        within(i).add("workflow_id", `must be empty or the request's workflow_id (${workflowId})`);
      if (input.taskId && ids.has(input.taskId))
        within(i).add("task_id", `${input.taskId} is also tasks[${ids.get(input.taskId)}]`);
      else if (input.taskId) ids.set(input.taskId, i);
    });
    // Ids are fixed before the graph is checked: generated ones cannot be named by others.
    const withIds = inputs.map((input) => ({ ...input, taskId: input.taskId || newTaskId() }));
    const inRequest = new Set(withIds.map((t) => t.taskId));
    // Dependencies outside the request are stored tasks, or unknown; a task naming too many is
    // refused by checkGraph before anything is looked up.
    const tooMany = withIds.some((t) => t.dependsOn.length > graphLimits.maxDependencies);
    const outside = [...new Set(withIds.flatMap((t) => t.dependsOn.filter((d) => !inRequest.has(d))))];
    const stored = outside.length > 0 && !tooMany ? await this.store.taskStates(outside) : [];
    const depth = checkGraph(
      v,
      opts.single ? "" : "tasks",
      withIds.map((t) => ({ id: t.taskId, dependsOn: t.dependsOn })),
      new Map(stored.map((s) => [s.id, s.depth])),
    );
    const prepared = withIds.map((t, i) =>
      prepareSubmit(
        within(i),
        {
          ...t,
          taskId: inputs[i]?.taskId ?? "",
          workflowId: opts.single ? t.workflowId : workflowId,
          depth: depth.get(t.taskId) ?? 0,
        },
        opts.actor,
      ),
    );
    v.throwIfAny();
    // prepareSubmit generates ids for empty ones: use the ones the graph was checked with.
    const news = prepared.map((p, i) => ({
      ...p,
      task: { ...p.task, id: withIds[i]?.taskId ?? p.task.id },
      event: { ...p.event, taskId: withIds[i]?.taskId ?? p.task.id },
    }));
    const res = await this.store.createTasks(
      news.map((p) => p.task),
      news.map((p) => p.event),
      opts.audit ? [opts.audit.fields(news[0]?.task.id ?? "")] : undefined,
    );
    if (!res.created) {
      const byId = new Map(res.taken.map((r) => [r.task.id, r]));
      const same =
        res.taken.length === news.length &&
        news.every((p) => {
          const r = byId.get(p.task.id);
          return r !== undefined && p.task.requestHash !== "" && storedFingerprint(r) === p.fingerprint;
        });
      if (!same) {
        const first = news.findIndex((p) => {
          const r = byId.get(p.task.id);
          return r !== undefined && storedFingerprint(r) !== p.fingerprint;
        });
        const at = first >= 0 ? first : news.findIndex((p) => byId.has(p.task.id));
        const id = news[at]?.task.id ?? "";
        throw new AlreadyExistsError(
          `task ${id} already exists${opts.single ? " with different contents" : ""}; choose another task_id (nothing was stored)`,
          { task_id: id, ...(opts.single ? {} : { field: `tasks[${at}].task_id` }) },
        );
      }
      const tasks = news.map((p) => (byId.get(p.task.id) as TaskRecord).task);
      return { tasks, workflowId: tasks[0]?.workflowId ?? workflowId, created: false };
    }
    opts.audit?.markWritten();
    this.writer.bus.publish(res.events);
    // Waiting tasks whose dependencies are all stored tasks: those may have ended already.
    const records = await Promise.all(
      res.records.map(async (rec) =>
        rec.task.status === TaskStatus.WAITING && rec.task.dependsOn.every((d) => !inRequest.has(d))
          ? ((await this.resolver.resolve(rec.task.id)) ?? rec)
          : rec,
      ),
    );
    return { tasks: records.map((r) => r.task), workflowId, created: true };
  }

  /** Cancels tasks by ids or by a filter (at most `limit`), or with dry_run counts them. */
  async cancelMany(req: CancelTasksRequest): Promise<CancelBatch> {
    const v = new Violations();
    const limit = req.limit === 0 ? cancelLimits.defaultLimit : req.limit;
    if (req.limit < 0 || req.limit > cancelLimits.maxLimit)
      v.add("limit", `must be between 1 and ${cancelLimits.maxLimit}, or 0 for ${cancelLimits.defaultLimit}`);
    checkReason(v, "reason", req.reason);
    if (req.taskIds.length > cancelLimits.maxIds)
      v.add("task_ids", `at most ${cancelLimits.maxIds} ids (got ${req.taskIds.length})`);
    req.taskIds.slice(0, cancelLimits.maxIds).forEach((id, i) => {
      checkTaskId(v, `task_ids[${i}]`, id, true);
    });
    const f = req.filter;
    const byFilter =
      f !== undefined && (f.status || f.type || f.priority || f.workflowId || f.idPrefix || f.label);
    if (req.taskIds.length > 0 && f !== undefined)
      v.add("filter", "give either task_ids or a filter, not both");
    let query: TaskQuery | undefined;
    let description: string;
    if (req.taskIds.length > 0) {
      description = `ids ${req.taskIds.slice(0, 5).join(",")}${req.taskIds.length > 5 ? ",…" : ""}`;
    } else {
      if (!byFilter && !req.all)
        v.add(
          "filter",
          "matches every task that has not ended; set a status, type, priority, workflow_id, id_prefix or label, or set all to confirm",
        );
      const status = f?.status ? parseStatusName(f.status) : undefined;
      if (f?.status && status === undefined) v.add("filter.status", `unknown status "${f.status}"`);
      if (f?.priority && !(f.priority in TaskPriority))
        v.add("filter.priority", `unknown priority ${f.priority}`);
      checkTaskId(v, "filter.workflow_id", f?.workflowId ?? "", false);
      if ((f?.idPrefix ?? "").length > taskLimits.idMaxLength)
        v.add("filter.id_prefix", `must be at most ${taskLimits.idMaxLength} characters`);
      const label = parseLabelFilter(v, "filter.label", f?.label ?? "");
      query = {
        limit,
        offset: 0,
        order: "oldest",
        status,
        unfinished: true,
        type: f?.type || undefined,
        priority: f?.priority || undefined,
        workflowId: f?.workflowId || undefined,
        idPrefix: f?.idPrefix || undefined,
        label,
      };
      description = describeFilter(f, req.all);
    }
    v.throwIfAny();

    let targets: { id: string; record?: TaskRecord }[];
    let remaining: number;
    if (query) {
      const page = await this.store.listTasks(query);
      targets = page.records.map((r) => ({ id: r.task.id, record: r }));
      remaining = page.total - targets.length;
    } else {
      const ids = [...new Set(req.taskIds)];
      targets = ids.slice(0, limit).map((id) => ({ id }));
      remaining = ids.length - targets.length;
    }
    const results: CancelBatch["results"] = [];
    let canceled = 0;
    // In chunks: every write of a chunk shares the store's group commit.
    for (let i = 0; i < targets.length; i += 64) {
      const chunk = targets.slice(i, i + 64);
      const outcomes = await Promise.all(
        chunk.map((t) => (req.dryRun ? this.wouldCancel(t.id, t.record) : this.cancelOne(t.id, req.reason))),
      );
      for (const o of outcomes) {
        if (o.success) canceled++;
        results.push(o);
      }
    }
    return { matched: targets.length, canceled, remaining, dryRun: req.dryRun, results, description };
  }

  private async wouldCancel(id: string, known?: TaskRecord): Promise<CancelBatch["results"][number]> {
    const record = known ?? (await this.store.getTask(id)).record;
    if (!record)
      return { taskId: id, success: false, status: TaskStatus.UNSPECIFIED, error: "not_found: no such task" };
    const status = record.task.status;
    const ended = terminalStates.has(status);
    return {
      taskId: id,
      success: !ended,
      status,
      error: ended ? `failed_precondition: task ${id} already ended as ${statusName(status)}` : "",
    };
  }

  private async cancelOne(id: string, reason: string): Promise<CancelBatch["results"][number]> {
    try {
      const task = await this.tasks.cancel(id, reason);
      return { taskId: id, success: true, status: task.status, error: "" };
    } catch (err) {
      // What refuses one task is in its result; anything else (the store failing) fails the call.
      if (!(err instanceof DomainError) || err.kind === "unavailable") throw err;
      const { record } = await this.store.getTask(id);
      return {
        taskId: id,
        success: false,
        status: record?.task.status ?? TaskStatus.UNSPECIFIED,
        error: `${err.kind}: ${err.message}`,
      };
    }
  }

  /**
   * Stores a new task repeating finished task `taskId` (same input, the same workflow, linked by
   * retry_of); with `failedHostsOnly`, limited to the hosts that failed in its last run.
   */
  async retry(
    input: { taskId: string; failedHostsOnly: boolean; newTaskId: string },
    audit?: AuditInWrite,
    actor?: Actor,
  ): Promise<{ task: Task; created: boolean }> {
    const v = new Violations();
    checkTaskId(v, "task_id", input.taskId, true);
    checkTaskId(v, "new_task_id", input.newTaskId, false);
    v.throwIfAny();
    const { record } = await this.store.getTask(input.taskId);
    if (!record) throw new NotFoundError(`task ${input.taskId} not found`, { task_id: input.taskId });
    const t = record.task;
    if (!terminalStates.has(t.status)) {
      throw new FailedPreconditionError(
        `task ${t.id} is ${statusName(t.status)}; only a task that has ended can be retried`,
        { task_id: t.id, status: statusName(t.status) },
      );
    }
    if (t.origin === "core") {
      throw new FailedPreconditionError(
        `task ${t.id} was run by a Spage core on its own; the gateway cannot start it again`,
        { task_id: t.id, origin: t.origin },
      );
    }
    let limitHosts: string[] = [];
    if (input.failedHostsOnly) {
      limitHosts = t.hosts.filter((h) => h.failed > 0).map((h) => h.host);
      if (limitHosts.length === 0) {
        throw new FailedPreconditionError(`no host failed in the last run of task ${t.id}; retry it whole`, {
          task_id: t.id,
        });
      }
    }
    const res = await this.tasks.submit(
      {
        taskId: input.newTaskId,
        type: t.type,
        priority: t.priority,
        payload: t.payload,
        metadata: t.metadata,
        timeoutSeconds: t.timeoutSeconds,
        onLost: t.onLost,
        maxAttempts: t.maxAttempts,
        era: t.era,
        workflowId: t.workflowId,
        retryOf: t.id,
        limitHosts,
      },
      audit,
      actor,
    );
    if (res.created) {
      const events = await this.store.appendEvents([
        {
          type: "task.retried",
          taskId: t.id,
          data: {
            retry_id: res.task.id,
            ...(limitHosts.length > 0 ? { limit: limitHosts.join(",") } : {}),
          },
        },
      ]);
      this.writer.bus.publish(events);
    }
    return res;
  }
}

/** The audit text of a batch filter. */
function describeFilter(f: CancelTasksRequest["filter"], all: boolean): string {
  const parts: string[] = [];
  if (f?.status) parts.push(`status=${f.status}`);
  if (f?.type) parts.push(`type=${f.type}`);
  if (f?.priority) parts.push(`priority=${TaskPriority[f.priority] ?? f.priority}`);
  if (f?.workflowId) parts.push(`workflow=${f.workflowId}`);
  if (f?.idPrefix) parts.push(`id_prefix=${f.idPrefix}`);
  if (f?.label) parts.push(`label=${f.label}`);
  if (parts.length === 0 && all) parts.push("all");
  return `filter ${parts.join(" ")}`;
}
