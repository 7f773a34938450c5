import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ContextValues, ServiceImpl } from "@connectrpc/connect";
import type { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import type { Task } from "../../../gen/spage/core/common_pb.js";
import { auditDetailOf } from "../auth/principal.js";
import { kAuditDetail, kAuditInWrite, kPeerAddress, kPrincipal, kRequestId } from "../context-keys.js";
import { checkTaskId, Violations } from "../domain/task-validation.js";
import type { EventBus } from "../events/event-bus.js";
import { WorkflowMembers } from "../events/event-bus.js";
import { Watch } from "../events/watch-events.js";
import type { TaskStore } from "../store/task-store.js";
import { type AccessServiceDeps, createAccessService } from "./access-service.js";
import { actorOf } from "./actor.js";
import type { AuditDraft, AuditLog } from "./audit-log.js";
import { type DaemonChannelDeps, handleDaemonStream } from "./daemon-channel.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import type { HealthState } from "./health-state.js";
import type { TaskService } from "./task-service.js";
import type { WorkflowService } from "./workflow-service.js";

/** What SpageAPI needs. */
export interface ApiServiceDeps {
  readonly tasks: TaskService;
  /** The daemon channel's collaborators. */
  readonly daemons: DaemonChannelDeps;
  readonly store: TaskStore;
  readonly bus: EventBus;
  readonly health: HealthState;
  readonly metrics: GatewayMetrics;
  /** Live events buffered per watcher before a slow one is ended. */
  readonly watchBuffer: number;
  /** Keys, sessions, limits and the audit log, for the access RPCs. */
  readonly access: AccessServiceDeps;
  readonly workflows: WorkflowService;
  readonly audit: AuditLog;
}

/** The ids of a workflow's stored tasks, read page by page. */
async function workflowTaskIds(store: TaskStore, workflowId: string): Promise<string[]> {
  const ids: string[] = [];
  let afterPosition: number | undefined;
  for (;;) {
    const page = await store.listTasks({
      limit: 1000,
      offset: 0,
      order: "oldest",
      workflowId,
      afterPosition,
    });
    for (const r of page.records) ids.push(r.task.id);
    const last = page.records[page.records.length - 1];
    if (!page.more || !last) return ids;
    afterPosition = last.position;
  }
}

/** An audit record of one task a call changed, with the call's principal, address and request id. */
function callAudit(values: ContextValues, method: string, taskId: string, detail: string): AuditDraft {
  const principal = values.get(kPrincipal);
  return {
    principal: principal?.name ?? "unknown",
    keyId: principal?.keyId ?? "",
    clientAddress: values.get(kPeerAddress),
    method,
    taskId,
    code: "ok",
    requestId: values.get(kRequestId),
    detail: auditDetailOf(principal, detail),
  };
}

const maxWatchTypes = 32;

/** Creates the SpageAPI implementation. */
export function createApiService(deps: ApiServiceDeps): ServiceImpl<typeof SpageAPI> {
  const { tasks, workflows, store, bus, health, metrics } = deps;
  const watchGauge = metrics.streamGauge("watch_streams");
  return {
    ...createAccessService(deps.access),
    async submitTask(req, ctx) {
      const audit = ctx.values.get(kAuditInWrite);
      const actor = actorOf(ctx.values);
      // With dependencies, the task is a graph of one: checked and stored as SubmitTasks does.
      const { created, task } =
        req.dependsOn.length > 0
          ? await workflows
              .submitMany([req], req.workflowId, { audit, actor, single: true })
              .then((r) => ({ created: r.created, task: r.tasks[0] as Task }))
          : await tasks.submit(req, audit, actor);
      if (created) metrics.count("tasks_submitted_total");
      return { success: true, taskId: task.id };
    },
    async submitTasks(req, ctx) {
      ctx.values.set(kAuditDetail, `${req.tasks.length} tasks, workflow ${req.workflowId || "(new)"}`);
      const res = await workflows.submitMany(req.tasks, req.workflowId, {
        audit: ctx.values.get(kAuditInWrite),
        actor: actorOf(ctx.values),
      });
      if (res.created) metrics.count("tasks_submitted_total", res.tasks.length);
      return { taskIds: res.tasks.map((t) => t.id), workflowId: res.workflowId, created: res.created };
    },
    async cancelTasks(req, ctx) {
      const res = await workflows.cancelMany(req);
      ctx.values.set(
        kAuditDetail,
        `${res.dryRun ? "dry run: " : ""}${res.description}; matched ${res.matched}, canceled ${res.canceled}, remaining ${res.remaining}`,
      );
      // The batch's own record is the call's; each task changed has one of its own.
      if (!res.dryRun) {
        await deps.audit.recordMany(
          res.results
            .filter((r) => r.success)
            .map((r) =>
              callAudit(ctx.values, "spage.api.SpageAPI/CancelTasks", r.taskId, "canceled in a batch"),
            ),
        );
      }
      return res;
    },
    async retryTask(req, ctx) {
      const { task, created } = await workflows.retry(
        req,
        ctx.values.get(kAuditInWrite),
        actorOf(ctx.values),
      );
      if (created) metrics.count("tasks_submitted_total");
      return { task };
    },
    async getTaskStatus(req) {
      return tasks.get(req.taskId);
    },
    async cancelTask(req) {
      await tasks.cancel(req.taskId, req.reason);
      return { success: true };
    },
    async listTasks(req) {
      return tasks.list(req);
    },
    async reportTaskResult(req) {
      const { task, sequence } = await tasks.reportResult(req);
      return { success: true, task, sequence };
    },
    streamEvents(events, ctx) {
      return handleDaemonStream(events, ctx.signal, deps.daemons);
    },
    async listDaemons(req) {
      const since = new Date(Date.now() - 24 * 3600 * 1000);
      const records = await store.listDaemons(req.includeDisconnected, since);
      const tasksBy = new Map<string, string[]>();
      await Promise.all(
        records.map(async (d) =>
          tasksBy.set(
            d.id,
            (await store.tasksOfDaemon(d.id)).map((r) => r.task.id),
          ),
        ),
      );
      return {
        daemons: records.map((d) => ({
          id: d.id,
          hostname: d.hostname,
          version: d.version,
          capacity: d.capacity,
          labels: { ...d.labels },
          taskIds: tasksBy.get(d.id) ?? [],
          connected: d.connected,
          connectedAt: timestampFromDate(d.connectedAt),
          lastSeen: timestampFromDate(d.lastSeen),
        })),
      };
    },
    async healthCheck() {
      return health.check();
    },
    async getMetrics() {
      return metrics.snapshot();
    },
    // Not a generator itself: it validates, then hands back the watch, which Connect's handler
    // pulls and the fast path lets push (watch-events.ts).
    watchEvents(req, ctx) {
      const v = new Violations();
      if (req.types.length > maxWatchTypes)
        v.add("types", `at most ${maxWatchTypes} types (got ${req.types.length})`);
      if (req.types.some((t) => t === "" || t.length > 64))
        v.add("types", "each type must be 1 to 64 characters");
      v.throwIfAny();
      checkTaskId(v, "workflow_id", req.workflowId, false);
      v.throwIfAny();
      const setup = {
        afterSequence: req.afterSequence,
        filter: {
          taskId: req.taskId || undefined,
          types: req.types.length > 0 ? new Set(req.types) : undefined,
          workflow: req.workflowId ? new WorkflowMembers(req.workflowId) : undefined,
        },
        workflowTasks: (id: string) => workflowTaskIds(store, id),
        maxBuffered: deps.watchBuffer,
        gauge: watchGauge,
      };
      return new Watch(store, bus, setup, ctx);
    },
  };
}
