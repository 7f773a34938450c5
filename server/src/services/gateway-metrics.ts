/**
 * Figures reported by GetMetrics and GET /metrics: tasks by status, queue and run-time quantiles of
 * recently finished tasks (from the store, so every replica reports the same), open streams and
 * watchers, and counters kept by this process (RPCs by code, progress updates, submits).
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
  /** Tracks a long-lived stream of a kind (e.g. `daemon_streams`) for the gauge `<kind>_open`. */
  streamOpened(kind: string): () => void;
  /**
   * The gauge of a kind of stream, for a caller that tells each stream's close exactly once
   * itself: it holds nothing per stream, where `streamOpened` holds a closer.
   */
  streamGauge(kind: string): StreamGauge;
  /** Builds the snapshot. */
  snapshot(): Promise<Metrics>;
}

/** Counts the open streams of one kind. */
export interface StreamGauge {
  opened(): void;
  /** Once per `opened()`. */
  closed(): void;
}

/** Quantiles reported for each duration, as (suffix, q). */
export const quantiles: readonly (readonly [string, number])[] = [
  ["p50", 0.5],
  ["p90", 0.9],
  ["p99", 0.99],
];

/** Finished tasks the duration quantiles are computed over. */
const durationWindow = 1000;

/** The q-quantile (nearest rank) of `values`; 0 for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? 0;
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
      const gauge = this.streamGauge(kind);
      gauge.opened();
      let open = true;
      return () => {
        if (!open) return;
        open = false;
        gauge.closed();
      };
    },
    streamGauge(kind) {
      return {
        opened: () => streams.set(kind, (streams.get(kind) ?? 0) + 1),
        closed: () => streams.set(kind, (streams.get(kind) ?? 1) - 1),
      };
    },
    async snapshot() {
      const [stats, durations] = await Promise.all([store.stats(), store.recentDurations(durationWindow)]);
      const c: Record<string, number> = Object.fromEntries(counters);
      for (const [name, value] of Object.entries(TaskStatus)) {
        if (typeof value !== "number" || value === TaskStatus.UNSPECIFIED) continue;
        c[`tasks_${name.toLowerCase()}`] = stats.tasksByStatus.get(value) ?? 0;
      }
      c.events_total = Number(stats.lastSequence);
      const g: Record<string, number> = {
        tasks_queued: stats.tasksByStatus.get(TaskStatus.PENDING) ?? 0,
        tasks_running:
          (stats.tasksByStatus.get(TaskStatus.RUNNING) ?? 0) +
          (stats.tasksByStatus.get(TaskStatus.ASSIGNED) ?? 0) +
          (stats.tasksByStatus.get(TaskStatus.CANCELING) ?? 0),
        watchers_connected: bus.subscriberCount,
        event_sequence: Number(stats.lastSequence),
        uptime_seconds: Math.floor((Date.now() - started) / 1000),
      };
      for (const [kind, n] of streams) g[`${kind}_open`] = n;
      const h: Record<string, number> = {};
      for (const [suffix, q] of quantiles) {
        h[`task_queue_seconds_${suffix}`] = quantile(durations.queueSeconds, q);
        h[`task_run_seconds_${suffix}`] = quantile(durations.runSeconds, q);
      }
      h.task_queue_seconds_count = durations.queueSeconds.length;
      h.task_run_seconds_count = durations.runSeconds.length;
      return create(MetricsSchema, { counters: c, gauges: g, histograms: h, timestamp: timestampNow() });
    },
  };
}
