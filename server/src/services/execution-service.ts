/**
 * SpageExecution, the service Spage cores call: thin adapters from the wire messages to TaskService.
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  Code,
  type ConnectError,
  type ContextValues,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { type ProgressUpdate, ProgressUpdateSchema, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import type { SpageExecution } from "../../../gen/spage/core/execution_pb.js";
import {
  type PlayProgressUpdate,
  PlayProgressUpdateSchema,
  PlayTaskResultSchema,
  type TaskProgressUpdate,
  TaskProgressUpdateSchema,
} from "../../../gen/spage/core/play_pb.js";
import { auditDetailOf } from "../auth/principal.js";
import { kAuditInWrite, kLog, kNodeRequest, kPeerAddress, kPrincipal, kRequestId } from "../context-keys.js";
import { PermissionDeniedError } from "../domain/errors.js";
import { playStatusOf } from "../domain/play-steps.js";
import type { Actor } from "../domain/task-owner.js";
import { statusName, terminalStates } from "../domain/task-state.js";
import { clip } from "../domain/task-validation.js";
import { drainThenAnswer } from "../events/drain-then-answer.js";
import { watchPeerEnd } from "../http/peer-end.js";
import { toConnectError } from "../interceptors/error-mapping.js";
import type { TaskRecord } from "../store/task-store.js";
import { actorOf } from "./actor.js";
import type { AuditLog } from "./audit-log.js";
import { type CoreRuns, type CoreStreamLink, isLiveCoreRun } from "./core-runs.js";
import type { DaemonRegistry } from "./daemon-registry.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import type { HealthState } from "./health-state.js";
import type { PlayService, Recorded } from "./play-service.js";
import type { TaskService } from "./task-service.js";

/** What SpageExecution needs. */
export interface ExecutionServiceDeps {
  readonly tasks: TaskService;
  readonly plays: PlayService;
  readonly coreRuns: CoreRuns;
  /** The connected daemons, for a play's hostname. */
  readonly registry: DaemonRegistry;
  readonly health: HealthState;
  readonly metrics: GatewayMetrics;
  /** Where refused attempts on someone else's run are recorded. */
  readonly audit: AuditLog;
}

/** Creates the SpageExecution implementation. */
export function createExecutionService(deps: ExecutionServiceDeps): ServiceImpl<typeof SpageExecution> {
  const { tasks, plays, health, metrics } = deps;
  const hostname = (daemonId: string) => (daemonId ? (deps.registry.get(daemonId)?.hostname ?? "") : "");
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
      return progressCall(deps, ctx, updates, "progress_streams", acknowledge);
    },
    async healthCheck() {
      return health.check();
    },
    async getMetrics() {
      return metrics.snapshot();
    },

    async executePlay(req, ctx) {
      const { task } = await plays.execute(req, ctx.values.get(kAuditInWrite), actorOf(ctx.values));
      return { success: true, playId: task.id };
    },
    async cancelPlay(req) {
      await plays.cancel(req.playId, req.reason);
      return { success: true };
    },
    async getPlayStatus(req, ctx) {
      return { play: await plays.get(req.playId, hostname, actorOf(ctx.values)) };
    },
    async registerPlay(req, ctx) {
      const task = await plays.register(req, actorOf(ctx.values));
      return { success: true, playId: task.id };
    },
    async registerPlayCompletion(req, ctx) {
      await plays.complete(req, actorOf(ctx.values));
      return { success: true };
    },
    streamTaskProgress(updates, ctx) {
      return progressCall(deps, ctx, updates, "step_streams", acknowledgeStep);
    },
    streamPlayProgress(updates, ctx) {
      return progressCall(deps, ctx, updates, "play_streams", acknowledgePlay);
    },
  };
}

/**
 * One progress stream of any era: each update is handled in order, even after the core cancelled
 * the call (drainThenAnswer), and the core-only runs it carried learn how it ended once its last
 * update is stored. The gauge `<kind>_open` counts it until then.
 */
function progressCall<I, O>(
  deps: ExecutionServiceDeps,
  ctx: HandlerContext,
  updates: AsyncIterable<I>,
  kind: string,
  answer: (stream: ProgressStream, update: I) => Promise<O>,
): AsyncIterable<O> {
  const closeGauge = deps.metrics.streamOpened(kind);
  const peerEnd = watchPeerEnd(ctx.values.get(kNodeRequest));
  const link = deps.coreRuns.link();
  const stream: ProgressStream = {
    tasks: deps.tasks,
    plays: deps.plays,
    metrics: deps.metrics,
    audit: deps.audit,
    link,
    actor: actorOf(ctx.values),
    values: ctx.values,
    method: ctx.method.name,
    refused: undefined,
  };
  return drainThenAnswer(
    updates,
    ctx.signal,
    (u) => answer(stream, u),
    () => {
      closeGauge();
      void peerEnd.then((how) => link.end(how));
    },
  );
}

/** One StreamProgress call: who sends it, and the runs it carried. */
interface ProgressStream {
  readonly tasks: TaskService;
  readonly plays: PlayService;
  readonly metrics: GatewayMetrics;
  readonly audit: AuditLog;
  readonly link: CoreStreamLink;
  readonly actor: Actor;
  readonly values: ContextValues;
  /** The method's name, e.g. StreamProgress. */
  readonly method: string;
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
  const res = await recordOrRefuse(stream, update.taskId, "progress_updates", () =>
    stream.tasks.recordProgress(update, stream.actor),
  );
  if ("refused" in res) {
    const ce = res.refused;
    return create(ProgressUpdateSchema, {
      taskId: update.taskId,
      progress: update.progress,
      message: ce.rawMessage,
      metadata: { ack: "false", error: ce.rawMessage, code: codeToString(ce.code) },
      timestamp: timestampNow(),
    });
  }
  const { events, record } = res;
  const last = events[events.length - 1];
  const metadata: Record<string, string> = { ack: "true", sequence: String(last?.sequence ?? 0) };
  let message = "ack";
  const status = record.task.status;
  if (terminalStates.has(status)) {
    stream.metrics.count("progress_updates_after_end_total");
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
      method: `spage.core.SpageExecution/${stream.method}`,
      taskId,
      code: "permission_denied",
      requestId: stream.values.get(kRequestId),
      detail: auditDetailOf(principal, clip(`update refused: ${message}`, 200)),
    });
  } catch (err) {
    stream.values.get(kLog).error({ err, task: taskId }, "audit record not written");
  }
}

/**
 * Stores a play's own update and answers with the play's stored state (output "ack", or why the
 * play was already over), or, for an update that cannot be stored, with the error.
 */
async function acknowledgePlay(
  stream: ProgressStream,
  update: PlayProgressUpdate,
): Promise<PlayProgressUpdate> {
  const reply = (status: number, output: string, error = "") =>
    create(PlayProgressUpdateSchema, {
      playId: update.playId,
      status,
      output,
      error,
      timestamp: timestampNow(),
    });
  const res = await recordOrRefuse(stream, update.playId, "play_updates", () =>
    stream.plays.recordPlay(update, stream.actor),
  );
  if ("refused" in res) return reply(0, "refused", refusalText(res.refused));
  return reply(playStatusOf(res.record.task.status), ackText(res));
}

/**
 * Stores one step update of a play and answers with the step as stored (its kept status), or, for
 * an update that cannot be stored, with the error in result.error.
 */
async function acknowledgeStep(
  stream: ProgressStream,
  update: TaskProgressUpdate,
): Promise<TaskProgressUpdate> {
  const number = update.taskId || update.result?.taskId || 0;
  const reply = (status: number, output: string, error = "") =>
    create(TaskProgressUpdateSchema, {
      playId: update.playId,
      taskId: number,
      taskName: update.taskName,
      result: create(PlayTaskResultSchema, {
        taskId: number,
        taskName: update.result?.taskName ?? "",
        status,
        output,
        error,
      }),
      timestamp: timestampNow(),
    });
  const res = await recordOrRefuse(stream, update.playId, "step_updates", () =>
    stream.plays.recordStep(update, stream.actor),
  );
  if ("refused" in res) return reply(0, "refused", refusalText(res.refused));
  const step = res.record.task.steps.find((s) => s.number === number);
  return reply(step?.status ?? 0, ackText(res));
}

/**
 * Runs `record` for one update of a stream, counting it (`<counter>_total`, or `_rejected_total`)
 * and attaching a core-only run to the stream; a refusal comes back as its error, audited when the
 * run is someone else's, and logged when it is the gateway's own fault.
 */
async function recordOrRefuse<R extends { readonly record: TaskRecord }>(
  stream: ProgressStream,
  taskId: string,
  counter: string,
  record: () => Promise<R>,
): Promise<R | { refused: ConnectError }> {
  try {
    const res = await record();
    stream.metrics.count(`${counter}_total`);
    if (isLiveCoreRun(res.record)) stream.link.attach(res.record.task.id);
    return res;
  } catch (err) {
    const ce = toConnectError(err);
    if (ce.code === Code.Internal)
      stream.values.get(kLog).error({ err, task: taskId }, "progress update failed");
    stream.metrics.count(`${counter}_rejected_total`);
    if (err instanceof PermissionDeniedError) await auditRefusal(stream, taskId, ce.rawMessage);
    return { refused: ce };
  }
}

/** A refusal as a play-era reply's error: `<code>: <message>`. */
const refusalText = (ce: ConnectError) => `${codeToString(ce.code)}: ${ce.rawMessage}`;

/** The output of an acknowledgement: "ack", or why the update changed nothing. */
function ackText(res: Recorded): string {
  if (res.note) return res.note;
  const t = res.record.task;
  if (terminalStates.has(t.status)) return `ack; play ${t.id} has ended as ${statusName(t.status)}`;
  if (t.status === TaskStatus.CANCELING)
    return `ack; play ${t.id} is being canceled (${t.error || "canceled"}); stop the play`;
  return "ack";
}
