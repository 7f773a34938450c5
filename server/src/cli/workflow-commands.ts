/**
 * `submit-workflow FILE.yaml`, `workflow show ID` and `retry ID`: a whole graph of tasks in one
 * SubmitTasks call from a small YAML file, a workflow's tasks drawn as a tree of dependencies with
 * their states, and a new attempt of a finished task (optionally of its failed hosts only).
 */
import { readFileSync } from "node:fs";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { parseDocument } from "yaml";
import {
  ListOrder,
  ListTasksResponseSchema,
  RetryTaskResponseSchema,
  type SubmitTaskRequestSchema,
  SubmitTasksResponseSchema,
} from "../../../gen/spage/api/tasks_pb.js";
import type { Task } from "../../../gen/spage/core/common_pb.js";
import { parseCommand, priorities, UsageError } from "./cli-args.js";
import { json, statusText } from "./format.js";
import { openClient } from "./gateway-client.js";

type Out = (text: string) => void;
type TaskInit = MessageInitShape<typeof SubmitTaskRequestSchema>;

/** The keys a task of a workflow file may have. */
const taskKeys = new Set([
  "id",
  "type",
  "after",
  "priority",
  "payload",
  "metadata",
  "timeout_seconds",
  "on_lost",
  "max_attempts",
]);

/** A map of strings from a YAML value (numbers and booleans as text). */
function stringMap(where: string, value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value))
    throw new UsageError(`${where}: expected a map of key: value`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v !== null && typeof v === "object")
      throw new UsageError(`${where}.${k}: expected a string, number or boolean`);
    out[k] = v === null ? "" : String(v);
  }
  return out;
}

function wholeNumber(where: string, value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== "number" || !Number.isInteger(value))
    throw new UsageError(`${where}: expected a whole number`);
  return value;
}

/**
 * Reads a workflow file: `workflow` (optional id) and `tasks`, each with `id`, `type` (default
 * playbook), `after` (ids), `priority`, `payload`, `metadata`, `timeout_seconds`, `on_lost`,
 * `max_attempts`. Mistakes are UsageErrors naming the line or the field.
 */
export function parseWorkflowFile(text: string, name: string): { workflowId: string; tasks: TaskInit[] } {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new UsageError(`${name}: ${doc.errors.map((e) => e.message.split("\n")[0]).join("; ")}`);
  }
  const root = doc.toJS() as unknown;
  if (root === null || typeof root !== "object" || Array.isArray(root))
    throw new UsageError(`${name}: expected a map with "tasks" (and optionally "workflow")`);
  const { workflow, tasks, ...rest } = root as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0)
    throw new UsageError(`${name}: unknown key "${unknown[0]}"; use workflow and tasks`);
  if (workflow !== undefined && typeof workflow !== "string")
    throw new UsageError(`${name}: workflow: expected a string`);
  if (!Array.isArray(tasks) || tasks.length === 0)
    throw new UsageError(`${name}: tasks: expected a list of tasks`);
  const parsed = tasks.map((t: unknown, i): TaskInit => {
    const where = `${name}: tasks[${i}]`;
    if (t === null || typeof t !== "object" || Array.isArray(t))
      throw new UsageError(`${where}: expected a map`);
    const task = t as Record<string, unknown>;
    for (const k of Object.keys(task)) {
      if (!taskKeys.has(k))
        throw new UsageError(`${where}: unknown key "${k}"; use ${[...taskKeys].join(", ")}`);
    }
    if (typeof task.id !== "string" || task.id === "")
      throw new UsageError(`${where}.id: required, a string`);
    const after = task.after ?? [];
    const dependsOn = typeof after === "string" ? [after] : after;
    if (!Array.isArray(dependsOn) || dependsOn.some((d) => typeof d !== "string"))
      throw new UsageError(`${where}.after: expected a task id or a list of task ids`);
    const priorityName = String(task.priority ?? "normal").toLowerCase();
    const priority = priorities[priorityName];
    if (priority === undefined)
      throw new UsageError(`${where}.priority: "${priorityName}" is not low, normal, high or critical`);
    if (task.type !== undefined && typeof task.type !== "string")
      throw new UsageError(`${where}.type: expected a string`);
    return {
      taskId: task.id,
      type: (task.type as string | undefined) ?? "playbook",
      dependsOn: dependsOn as string[],
      priority,
      payload: stringMap(`${where}.payload`, task.payload),
      metadata: stringMap(`${where}.metadata`, task.metadata),
      timeoutSeconds: wholeNumber(`${where}.timeout_seconds`, task.timeout_seconds),
      onLost: task.on_lost === undefined ? "" : String(task.on_lost),
      maxAttempts: wholeNumber(`${where}.max_attempts`, task.max_attempts),
    };
  });
  return { workflowId: (workflow as string | undefined) ?? "", tasks: parsed };
}

/** `submit-workflow FILE`: stores a workflow's tasks at once. */
export async function submitWorkflowCommand(argv: readonly string[], out: Out): Promise<number> {
  const { positionals, common } = parseCommand(argv, {});
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new UsageError("usage: spage-gateway submit-workflow FILE.yaml");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const wf = parseWorkflowFile(text, file);
  const client = openClient(common);
  try {
    const res = await client.api.submitTasks(wf);
    if (common.json) out(json(SubmitTasksResponseSchema, res));
    else {
      out(
        `workflow ${res.workflowId}: ${res.taskIds.length} task(s)${res.created ? "" : " (already stored)"}`,
      );
      for (const id of res.taskIds) out(id);
    }
    return 0;
  } finally {
    client.close();
  }
}

/** The tasks of a workflow as a tree of dependencies, one line each, in dependency order. */
export function drawWorkflow(workflowId: string, tasks: readonly Task[]): string {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  // Depth inside the workflow (dependencies outside it count as done), computed once per task.
  const depth = new Map<string, number>();
  const depthOf = (t: Task): number => {
    const known = depth.get(t.id);
    if (known !== undefined) return known;
    depth.set(t.id, 0);
    const inside = t.dependsOn.map((d) => byId.get(d)).filter((d): d is Task => d !== undefined);
    const d = inside.length === 0 ? 0 : Math.max(...inside.map(depthOf)) + 1;
    depth.set(t.id, d);
    return d;
  };
  for (const t of tasks) depthOf(t);
  // Each task hangs under its deepest dependency in the workflow; roots have none there.
  const children = new Map<string, Task[]>();
  const roots: Task[] = [];
  for (const t of tasks) {
    const parents = t.dependsOn.filter((d) => byId.has(d));
    if (parents.length === 0) {
      roots.push(t);
      continue;
    }
    const parent = parents.reduce((a, b) => ((depth.get(b) ?? 0) > (depth.get(a) ?? 0) ? b : a));
    children.set(parent, [...(children.get(parent) ?? []), t]);
  }
  const counts = new Map<string, number>();
  for (const t of tasks) counts.set(statusText(t.status), (counts.get(statusText(t.status)) ?? 0) + 1);
  const lines = [
    `workflow ${workflowId} (${tasks.length} task(s): ${[...counts].map(([s, n]) => `${n} ${s}`).join(", ")})`,
  ];
  const width = Math.max(...tasks.map((t) => t.id.length + 3 * (depth.get(t.id) ?? 0))) + 3;
  const draw = (t: Task, prefix: string, last: boolean, top: boolean) => {
    const lead = top ? "" : `${prefix}${last ? "└─ " : "├─ "}`;
    const after = t.dependsOn.length > 0 ? `after ${t.dependsOn.join(", ")}` : "";
    const error = t.error ? `  (${t.error})` : "";
    lines.push(
      `${`${lead}${t.id}`.padEnd(width)}${statusText(t.status).padEnd(11)}${after}${error}`.trimEnd(),
    );
    const kids = children.get(t.id) ?? [];
    const next = top ? "" : `${prefix}${last ? "   " : "│  "}`;
    kids.forEach((k, i) => {
      draw(k, next, i === kids.length - 1, false);
    });
  };
  for (const r of roots) draw(r, "", true, true);
  return lines.join("\n");
}

/** `workflow show ID`: a workflow's tasks and their dependencies. */
export async function workflowCommand(argv: readonly string[], out: Out): Promise<number> {
  const { positionals, common } = parseCommand(argv, {});
  const [sub, id] = positionals;
  if (sub !== "show" || !id || positionals.length > 2)
    throw new UsageError("usage: spage-gateway workflow show WORKFLOW_ID");
  const client = openClient(common);
  try {
    const tasks: Task[] = [];
    let pageToken = "";
    for (;;) {
      const page = await client.api.listTasks({
        workflowId: id,
        order: ListOrder.OLDEST_FIRST,
        limit: 1000,
        pageToken,
      });
      tasks.push(...page.tasks);
      if (!page.nextPageToken) {
        if (common.json) out(json(ListTasksResponseSchema, { ...page, tasks, nextPageToken: "" }));
        break;
      }
      pageToken = page.nextPageToken;
    }
    if (!common.json) {
      if (tasks.length === 0) {
        out(`workflow ${id}: no tasks`);
        return 1;
      }
      out(drawWorkflow(id, tasks));
    }
    return 0;
  } finally {
    client.close();
  }
}

/** `retry ID [--failed-hosts] [--id NEW_ID]`: a new attempt of a finished task. */
export async function retryCommand(argv: readonly string[], out: Out): Promise<number> {
  const {
    values: v,
    positionals,
    common,
  } = parseCommand(argv, {
    "failed-hosts": { type: "boolean" },
    id: { type: "string" },
  });
  const taskId = positionals[0];
  if (!taskId || positionals.length > 1)
    throw new UsageError("usage: spage-gateway retry TASK_ID [--failed-hosts] [--id NEW_ID]");
  const client = openClient(common);
  try {
    const res = await client.api.retryTask({
      taskId,
      failedHostsOnly: v["failed-hosts"] === true,
      newTaskId: (v.id as string | undefined) ?? "",
    });
    if (common.json) out(json(RetryTaskResponseSchema, res));
    else {
      const t = res.task;
      out(t?.id ?? "");
      if (t && t.limitHosts.length > 0) out(`limited to ${t.limitHosts.join(",")}`);
    }
    return 0;
  } finally {
    client.close();
  }
}
