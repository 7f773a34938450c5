/**
 * SpageExecution, the service Spage cores call: thin adapters from the wire messages to TaskService.
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { type ProgressUpdate, ProgressUpdateSchema, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import type { SpageExecution } from "../../../gen/spage/core/execution_pb.js";
import { kAuditInWrite, kNodeRequest } from "../context-keys.js";
import { statusName, terminalStates } from "../domain/task-state.js";
import { drainThenAnswer } from "../events/drain-then-answer.js";
import { watchPeerEnd } from "../http/peer-end.js";
import { toConnectError } from "../interceptors/error-mapping.js";
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
}

/** Creates the SpageExecution implementation. */
export function createExecutionService(deps: ExecutionServiceDeps): ServiceImpl<typeof SpageExecution> {
  const { tasks, coreRuns, health, metrics } = deps;
  return {
    async executeTask(req, ctx) {
      const { task } = await tasks.execute(req, ctx.values.get(kAuditInWrite));
      return { success: true, taskId: task.id };
    },
    async cancelTask(req) {
      await tasks.cancel(req.taskId, req.reason);
      return { success: true };
    },
    async getTaskStatus(req) {
      return tasks.get(req.taskId);
    },
    async registerTask(req) {
      const task = await tasks.register(req);
      return { success: true, taskId: task.id };
    },
    streamProgress(updates, ctx) {
      // The gauge counts the stream until its last received update is stored, which may be after
      // the call itself was cancelled; only then does a core-only run learn that its stream ended.
      const closeGauge = metrics.streamOpened("progress_streams");
      const peerEnd = watchPeerEnd(ctx.values.get(kNodeRequest));
      const link = coreRuns.link();
      return drainThenAnswer(
        updates,
        ctx.signal,
        (u) => acknowledge(tasks, metrics, link, u),
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

/**
 * Stores one update and builds the reply: an acknowledgement with the event's sequence (saying so
 * when the run has already ended or is being canceled), or, for an update that cannot be stored, a
 * reply carrying the error, so the core's stream stays open. A core prints what it receives.
 */
async function acknowledge(
  tasks: TaskService,
  metrics: GatewayMetrics,
  link: CoreStreamLink,
  update: ProgressUpdate,
): Promise<ProgressUpdate> {
  try {
    const { events, record } = await tasks.recordProgress(update);
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
    return create(ProgressUpdateSchema, {
      taskId: update.taskId,
      progress: update.progress,
      message: ce.rawMessage,
      metadata: { ack: "false", error: ce.rawMessage, code: codeToString(ce.code) },
      timestamp: timestampNow(),
    });
  }
}
