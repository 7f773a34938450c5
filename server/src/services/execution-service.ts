/**
 * SpageExecution, the service Spage cores call: thin adapters from the wire messages to TaskService.
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { type ProgressUpdate, ProgressUpdateSchema } from "../../../gen/spage/core/common_pb.js";
import type { SpageExecution } from "../../../gen/spage/core/execution_pb.js";
import { kAuditInWrite } from "../context-keys.js";
import { drainThenAnswer } from "../events/drain-then-answer.js";
import { toConnectError } from "../interceptors/error-mapping.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import type { HealthState } from "./health-state.js";
import type { TaskService } from "./task-service.js";

/** What SpageExecution needs. */
export interface ExecutionServiceDeps {
  readonly tasks: TaskService;
  readonly health: HealthState;
  readonly metrics: GatewayMetrics;
}

/** Creates the SpageExecution implementation. */
export function createExecutionService(deps: ExecutionServiceDeps): ServiceImpl<typeof SpageExecution> {
  const { tasks, health, metrics } = deps;
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
      // the call itself was cancelled.
      const closeGauge = metrics.streamOpened("progress_streams");
      return drainThenAnswer(updates, ctx.signal, (u) => acknowledge(tasks, metrics, u), closeGauge);
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
 * Stores one update and builds the reply: an acknowledgement with the event's sequence, or (for an
 * update that cannot be stored) a reply carrying the error, so the core's stream stays open.
 */
async function acknowledge(
  tasks: TaskService,
  metrics: GatewayMetrics,
  update: ProgressUpdate,
): Promise<ProgressUpdate> {
  try {
    const events = await tasks.recordProgress(update);
    metrics.count("progress_updates_total");
    const last = events[events.length - 1];
    return create(ProgressUpdateSchema, {
      taskId: update.taskId,
      progress: update.progress,
      message: "ack",
      metadata: { ack: "true", sequence: String(last?.sequence ?? 0) },
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
