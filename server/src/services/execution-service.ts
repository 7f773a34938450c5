/**
 * SpageExecution, the service Spage cores call: thin adapters from the wire messages to TaskService.
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { ContextValues, ServiceImpl } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { type ProgressUpdate, ProgressUpdateSchema, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import type { SpageExecution } from "../../../gen/spage/core/execution_pb.js";
import { kAuditInWrite, kLog, kNodeRequest, kPeerAddress, kPrincipal, kRequestId } from "../context-keys.js";
import { PermissionDeniedError } from "../domain/errors.js";
import type { Actor } from "../domain/task-owner.js";
import { statusName, terminalStates } from "../domain/task-state.js";
import { clip } from "../domain/task-validation.js";
import { drainThenAnswer } from "../events/drain-then-answer.js";
import { watchPeerEnd } from "../http/peer-end.js";
import { toConnectError } from "../interceptors/error-mapping.js";
import { actorOf } from "./actor.js";
import type { AuditLog } from "./audit-log.js";
import { type CoreRuns, type CoreStreamLink, isLiveCoreRun } from "./core-runs.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import type { HealthState } from "./health-state.js";
import type { TaskService } from "./task-service.js";

/** What SpageExecution needs. */
export interface ExecutionServiceDeps {
  readonly tasks: TaskService;
  readonly coreRuns: CoreRuns;
  readonly health: HealthState;
  readonly metrics: GatewayMetrics;
  /** Where refused attempts on someone else's run are recorded. */
  readonly audit: AuditLog;
}

/** Creates the SpageExecution implementation. */
export function createExecutionService(deps: ExecutionServiceDeps): ServiceImpl<typeof SpageExecution> {
  const { tasks, coreRuns, health, metrics, audit } = deps;
  return {
    async executeTask(req, ctx) {
      const { task } = await tasks.execute(req, ctx.values.get(kAuditInWrite), actorOf(ctx.values));
      return { success: true, taskId: task.id };
    },
    async cancelTask(req) {
      await tasks.cancel(req.taskId, req.reason);
      return { success: true };
    },
    async getTaskStatus(req, ctx) {
      return tasks.get(req.taskId, actorOf(ctx.values));
    },
    async registerTask(req, ctx) {
      const task = await tasks.register(req, actorOf(ctx.values));
      return { success: true, taskId: task.id };
    },
    streamProgress(updates, ctx) {
      // The gauge counts the stream until its last received update is stored, which may be after
      // the call itself was cancelled; only then does a core-only run learn that its stream ended.
      const closeGauge = metrics.streamOpened("progress_streams");
      const peerEnd = watchPeerEnd(ctx.values.get(kNodeRequest));
      const link = coreRuns.link();
      const stream: ProgressStream = {
        tasks,
        metrics,
        audit,
        link,
        actor: actorOf(ctx.values),
        values: ctx.values,
        refused: undefined,
      };
      return drainThenAnswer(
        updates,
        ctx.signal,
        (u) => acknowledge(stream, u),
        () => {
          closeGauge();
          void peerEnd.then((how) => link.end(how));
        },
      );
    },
    async healthCheck() {
      return health.check();
    },
    async getMetrics() {
      return metrics.snapshot();
    },
  };
}

/** One StreamProgress call: who sends it, and the runs it carried. */
interface ProgressStream {
  readonly tasks: TaskService;
  readonly metrics: GatewayMetrics;
  readonly audit: AuditLog;
  readonly link: CoreStreamLink;
  readonly actor: Actor;
  readonly values: ContextValues;
  /** Runs whose updates on this stream were refused for ownership (each audited once). */
  refused: Set<string> | undefined;
}

/**
 * Stores one update and builds the reply: an acknowledgement with the event's sequence (saying so
 * when the run has already ended or is being canceled), or, for an update that cannot be stored, a
 * reply carrying the error, so the core's stream stays open. A core prints what it receives. An
 * update refused because the run is someone else's is audited, once per run and stream.
 */
async function acknowledge(stream: ProgressStream, update: ProgressUpdate): Promise<ProgressUpdate> {
  const { tasks, metrics, link, actor } = stream;
  try {
    const { events, record } = await tasks.recordProgress(update, actor);
    metrics.count("progress_updates_total");
    if (isLiveCoreRun(record)) link.attach(record.task.id);
    const last = events[events.length - 1];
    const metadata: Record<string, string> = { ack: "true", sequence: String(last?.sequence ?? 0) };
    let message = "ack";
    const status = record.task.status;
    if (terminalStates.has(status)) {
      metrics.count("progress_updates_after_end_total");
      metadata.run_over = "true";
      metadata.status = statusName(status);
      message = `run ${record.task.id} already ended as ${statusName(status)}; this update was stored as an event and changes nothing`;
    } else if (status === TaskStatus.CANCELING) {
      metadata.cancel_requested = "true";
      message = `run ${record.task.id} is being canceled (${record.task.error || "canceled"}); stop the run`;
    }
    return create(ProgressUpdateSchema, {
      taskId: update.taskId,
      progress: update.progress,
      message,
      metadata,
      timestamp: timestampNow(),
    });
  } catch (err) {
    const ce = toConnectError(err);
    metrics.count("progress_updates_rejected_total");
    if (err instanceof PermissionDeniedError) await auditRefusal(stream, update.taskId, ce.rawMessage);
    return create(ProgressUpdateSchema, {
      taskId: update.taskId,
      progress: update.progress,
      message: ce.rawMessage,
      metadata: { ack: "false", error: ce.rawMessage, code: codeToString(ce.code) },
      timestamp: timestampNow(),
    });
  }
}

async function auditRefusal(stream: ProgressStream, taskId: string, message: string): Promise<void> {
  if (stream.refused?.has(taskId)) return;
  stream.refused ??= new Set();
  stream.refused.add(taskId);
  const principal = stream.values.get(kPrincipal);
  try {
    await stream.audit.record({
      principal: principal?.name ?? "unknown",
      keyId: principal?.keyId ?? "",
      clientAddress: stream.values.get(kPeerAddress),
      method: "spage.core.SpageExecution/StreamProgress",
      taskId,
      code: "permission_denied",
      requestId: stream.values.get(kRequestId),
      detail: clip(`update refused: ${message}`, 200),
    });
  } catch (err) {
    stream.values.get(kLog).error({ err, task: taskId }, "audit record not written");
  }
}
