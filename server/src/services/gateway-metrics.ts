/**
 * Figures reported by GetMetrics: tasks by status from the store, open streams and watchers, and
 * counters kept by the services.
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { type Metrics, MetricsSchema, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import type { EventBus } from "../events/event-bus.js";
import type { TaskStore } from "../store/task-store.js";

/** Live counters and the snapshot builder. */
export interface GatewayMetrics {
  /** Counts one more of `name` (e.g. `progress_updates_total`). */
  count(name: string, by?: number): void;
  /** Tracks a long-lived stream of a kind (e.g. `daemon_streams`) for the gauge of that name. */
  streamOpened(kind: string): () => void;
  /** Builds the snapshot. */
  snapshot(): Promise<Metrics>;
}

/** Creates the metrics registry. */
export function createGatewayMetrics(store: TaskStore, bus: EventBus): GatewayMetrics {
  const counters = new Map<string, number>();
  const streams = new Map<string, number>();
  const started = Date.now();
  return {
    count(name, by = 1) {
      counters.set(name, (counters.get(name) ?? 0) + by);
    },
    streamOpened(kind) {
      streams.set(kind, (streams.get(kind) ?? 0) + 1);
      let open = true;
      return () => {
        if (!open) return;
        open = false;
        streams.set(kind, (streams.get(kind) ?? 1) - 1);
      };
    },
    async snapshot() {
      const stats = await store.stats();
      const c: Record<string, number> = Object.fromEntries(counters);
      const g: Record<string, number> = {
        watchers_connected: bus.subscriberCount,
        event_sequence: Number(stats.lastSequence),
        uptime_seconds: Math.floor((Date.now() - started) / 1000),
      };
      for (const [kind, n] of streams) g[`${kind}_open`] = n;
      for (const [value, name] of Object.entries(TaskStatus)) {
        if (typeof name !== "number" || name === TaskStatus.UNSPECIFIED) continue;
        c[`tasks_${value.toLowerCase()}`] = stats.tasksByStatus.get(name) ?? 0;
      }
      g.tasks_queued = stats.tasksByStatus.get(TaskStatus.PENDING) ?? 0;
      g.tasks_running = stats.tasksByStatus.get(TaskStatus.RUNNING) ?? 0;
      return create(MetricsSchema, { counters: c, gauges: g, histograms: {}, timestamp: timestampNow() });
    },
  };
}
