/**
 * Human output of the command line: tasks, task tables and event lines. Machine output is --json,
 * printed with the proto3 JSON mapping.
 */
import { type DescMessage, type MessageShape, toJsonString } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { type Event, type Task, TaskPriority, TaskStatus } from "../../../gen/spage/core/common_pb.js";

/** proto3 JSON of a message, one line. */
export function json<D extends DescMessage>(schema: D, msg: MessageShape<D>): string {
  return toJsonString(schema, msg);
}

const time = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString() : "-");

/** Short state name, e.g. RUNNING. */
export function statusText(s: TaskStatus): string {
  return TaskStatus[s] ?? String(s);
}

/** A task, several lines. */
export function formatTask(t: Task): string {
  const lines = [
    `id         ${t.id}`,
    `status     ${statusText(t.status)}${t.daemonId ? ` on daemon ${t.daemonId}` : ""}${t.attempt > 0 ? ` (attempt ${t.attempt})` : ""}`,
    `type       ${t.type}${t.era ? ` (${t.era})` : ""}    priority ${TaskPriority[t.priority] ?? t.priority}`,
    `progress   ${t.progress}%`,
    `created    ${time(t.createdAt)}    started ${time(t.startedAt)}    ended ${time(t.completedAt)}`,
  ];
  if (t.workflowId) lines.push(`workflow   ${t.workflowId}`);
  if (t.dependsOn.length > 0) lines.push(`after      ${t.dependsOn.join(", ")}`);
  if (t.dependents.length > 0) lines.push(`before     ${t.dependents.join(", ")}`);
  if (t.retryOf) lines.push(`retry of   ${t.retryOf}`);
  if (t.limitHosts.length > 0) lines.push(`limit      ${t.limitHosts.join(",")}`);
  if (Object.keys(t.payload).length > 0) {
    lines.push(
      `payload    ${Object.entries(t.payload)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}`,
    );
  }
  for (const h of t.hosts) {
    lines.push(
      `host       ${h.host}  ok=${h.ok} failed=${h.failed} skipped=${h.skipped} running=${h.running}${h.lastError ? `  last error: ${h.lastError}` : ""}`,
    );
  }
  for (const st of t.steps) {
    const took = st.duration > 0 ? ` ${st.duration.toFixed(2)}s` : "";
    lines.push(
      `step ${String(st.number).padStart(3)}   ${statusText(st.status).padEnd(9)} ${st.name}${took}${st.error ? `  error: ${st.error}` : ""}`,
    );
  }
  if (Object.keys(t.result).length > 0) {
    lines.push(
      `result     ${Object.entries(t.result)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}`,
    );
  }
  if (t.error) lines.push(`error      ${t.error}`);
  return lines.join("\n");
}

/** A table of tasks, one line each. */
export function formatTaskTable(tasks: readonly Task[], total: number): string {
  const rows = tasks.map((t) => [
    t.id,
    statusText(t.status),
    t.type,
    TaskPriority[t.priority] ?? String(t.priority),
    `${Math.round(t.progress)}%`,
    time(t.createdAt),
  ]);
  const head = ["ID", "STATUS", "TYPE", "PRIORITY", "PROGRESS", "CREATED"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line), `${tasks.length} of ${total} task(s)`].join("\n");
}

/** One event as a line (output events print their text). */
export function formatEvent(ev: Event, showTask: boolean): string {
  const prefix = `#${ev.sequence} ${time(ev.timestamp)}${showTask && ev.taskId ? ` ${ev.taskId}` : ""}`;
  if (ev.type === "task.output") {
    const text = ev.data.line ?? "";
    return text
      .split("\n")
      .map((l) => `${prefix} ${ev.data.stream === "stderr" ? "!" : "|"} ${l}`)
      .join("\n");
  }
  const data = Object.entries(ev.data)
    .map(([k, v]) => `${k}=${v.includes(" ") ? JSON.stringify(v) : v}`)
    .join(" ");
  return `${prefix} ${ev.type}${data ? ` ${data}` : ""}`;
}
