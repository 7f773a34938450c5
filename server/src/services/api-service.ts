import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import { kAuditInWrite } from "../context-keys.js";
import { Violations } from "../domain/task-validation.js";
import type { EventBus } from "../events/event-bus.js";
import { Watch } from "../events/watch-events.js";
import type { TaskStore } from "../store/task-store.js";
import { type AccessServiceDeps, createAccessService } from "./access-service.js";
import { actorOf } from "./actor.js";
import { type DaemonChannelDeps, handleDaemonStream } from "./daemon-channel.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import type { HealthState } from "./health-state.js";
import type { TaskService } from "./task-service.js";

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
}

const maxWatchTypes = 32;

/** Creates the SpageAPI implementation. */
export function createApiService(deps: ApiServiceDeps): ServiceImpl<typeof SpageAPI> {
  const { tasks, store, bus, health, metrics } = deps;
  const watchGauge = metrics.streamGauge("watch_streams");
  return {
    ...createAccessService(deps.access),
    async submitTask(req, ctx) {
      const { task, created } = await tasks.submit(req, ctx.values.get(kAuditInWrite), actorOf(ctx.values));
      if (created) metrics.count("tasks_submitted_total");
      return { success: true, taskId: task.id };
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
      const setup = {
        afterSequence: req.afterSequence,
        filter: {
          taskId: req.taskId || undefined,
          types: req.types.length > 0 ? new Set(req.types) : undefined,
        },
        maxBuffered: deps.watchBuffer,
        gauge: watchGauge,
      };
      return new Watch(store, bus, setup, ctx);
    },
  };
}
