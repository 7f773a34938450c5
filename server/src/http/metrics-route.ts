/**
 * `GET /metrics`: the GetMetrics figures as Prometheus text (exposition format 0.0.4).
 */
import type { FastifyInstance } from "fastify";
import type { Metrics } from "../../../gen/spage/core/common_pb.js";
import type { GatewayMetrics } from "../services/gateway-metrics.js";
import { quantiles } from "../services/gateway-metrics.js";

const taskStatusCounter = /^tasks_([a-z_]+)$/;

/** Renders a metrics snapshot as Prometheus text. */
export function renderPrometheus(m: Metrics): string {
  const out: string[] = [];
  const statuses = Object.entries(m.counters).filter(([k]) => taskStatusCounter.test(k));
  out.push("# HELP spage_tasks Tasks in the store by status.", "# TYPE spage_tasks gauge");
  for (const [k, v] of statuses) out.push(`spage_tasks{status="${k.replace(taskStatusCounter, "$1")}"} ${v}`);
  for (const [k, v] of Object.entries(m.counters)) {
    if (taskStatusCounter.test(k)) continue;
    const rpc = /^rpc_([a-z_]+)_total$/.exec(k);
    if (rpc) continue;
    out.push(`# TYPE spage_${k} counter`, `spage_${k} ${v}`);
  }
  const rpcs = Object.entries(m.counters).filter(([k]) => /^rpc_[a-z_]+_total$/.test(k));
  if (rpcs.length > 0) {
    out.push(
      "# HELP spage_rpc_total RPCs handled by this gateway, by status code.",
      "# TYPE spage_rpc_total counter",
    );
    for (const [k, v] of rpcs) out.push(`spage_rpc_total{code="${k.slice(4, -6)}"} ${v}`);
  }
  for (const [k, v] of Object.entries(m.gauges)) out.push(`# TYPE spage_${k} gauge`, `spage_${k} ${v}`);
  for (const name of ["task_queue_seconds", "task_run_seconds"]) {
    out.push(`# HELP spage_${name} Over the most recently finished tasks.`, `# TYPE spage_${name} summary`);
    for (const [suffix, q] of quantiles)
      out.push(`spage_${name}{quantile="${q}"} ${m.histograms[`${name}_${suffix}`] ?? 0}`);
    out.push(`spage_${name}_count ${m.histograms[`${name}_count`] ?? 0}`);
  }
  return `${out.join("\n")}\n`;
}

/** Registers GET /metrics. */
export function registerMetricsRoute(app: FastifyInstance, metrics: GatewayMetrics): void {
  app.get("/metrics", async (_req, reply) => {
    reply.header("content-type", "text/plain; version=0.0.4; charset=utf-8");
    reply.header("cache-control", "no-store");
    return renderPrometheus(await metrics.snapshot());
  });
}
