/**
 * `submit`, `get`, `list` and `cancel`: one call each against --endpoint, human output by default and
 * proto3 JSON with --json.
 */
import {
  CancelTaskResponseSchema,
  GetTaskStatusResponseSchema,
  ListOrder,
  ListTasksResponseSchema,
  SubmitTaskResponseSchema,
} from "../../../gen/spage/api/tasks_pb.js";
import { cancelBatch, cancelFlags } from "./cancel-batch.js";
import { intFlag, keyValues, parseCommand, priorities, UsageError } from "./cli-args.js";
import { formatTask, formatTaskTable, json } from "./format.js";
import { openClient } from "./gateway-client.js";

type Out = (text: string) => void;

/** `submit`: creates a task. */
export async function submitCommand(argv: readonly string[], out: Out): Promise<number> {
  const { values: v, common } = parseCommand(argv, {
    id: { type: "string" },
    type: { type: "string" },
    priority: { type: "string" },
    playbook: { type: "string" },
    inventory: { type: "string" },
    var: { type: "string", multiple: true },
    payload: { type: "string", multiple: true },
    metadata: { type: "string", multiple: true },
    labels: { type: "string" },
    timeout: { type: "string" },
    "on-lost": { type: "string" },
    "max-attempts": { type: "string" },
    after: { type: "string", multiple: true },
    workflow: { type: "string" },
  });
  const priorityName = String(v.priority ?? "normal").toLowerCase();
  const priority = priorities[priorityName];
  if (priority === undefined)
    throw new UsageError(`invalid --priority "${priorityName}": use low, normal, high or critical`);
  const payload = keyValues("payload", v.payload as string[] | undefined);
  if (v.playbook) payload.playbook = String(v.playbook);
  if (v.inventory) payload.inventory = String(v.inventory);
  const vars = keyValues("var", v.var as string[] | undefined);
  if (Object.keys(vars).length > 0) payload.variables = JSON.stringify(vars);
  if (v.labels) payload.target_labels = String(v.labels);
  const client = openClient(common);
  try {
    const res = await client.api.submitTask({
      taskId: (v.id as string | undefined) ?? "",
      type: (v.type as string | undefined) ?? (payload.playbook ? "playbook" : ""),
      priority,
      payload,
      metadata: keyValues("metadata", v.metadata as string[] | undefined),
      timeoutSeconds: intFlag("timeout", v.timeout, 0, 604_800, 0),
      onLost: (v["on-lost"] as string | undefined) ?? "",
      maxAttempts: intFlag("max-attempts", v["max-attempts"], 0, 20, 0),
      dependsOn: ((v.after as string[] | undefined) ?? [])
        .flatMap((a) => a.split(","))
        .filter((a) => a !== ""),
      workflowId: (v.workflow as string | undefined) ?? "",
    });
    out(common.json ? json(SubmitTaskResponseSchema, res) : res.taskId);
    return 0;
  } finally {
    client.close();
  }
}

/** `get ID`: shows one task. */
export async function getCommand(argv: readonly string[], out: Out): Promise<number> {
  const { positionals, common } = parseCommand(argv, {});
  const id = positionals[0];
  if (!id || positionals.length > 1) throw new UsageError("usage: spage-gateway get TASK_ID");
  const client = openClient(common);
  try {
    const res = await client.api.getTaskStatus({ taskId: id });
    out(common.json ? json(GetTaskStatusResponseSchema, res) : res.task ? formatTask(res.task) : "");
    return 0;
  } finally {
    client.close();
  }
}

/** `list`: a page of tasks. */
export async function listCommand(argv: readonly string[], out: Out): Promise<number> {
  const { values: v, common } = parseCommand(argv, {
    status: { type: "string" },
    type: { type: "string" },
    limit: { type: "string" },
    prefix: { type: "string" },
    workflow: { type: "string" },
    label: { type: "string" },
    oldest: { type: "boolean" },
    "page-token": { type: "string" },
  });
  const client = openClient(common);
  try {
    const res = await client.api.listTasks({
      status: (v.status as string | undefined) ?? "",
      type: (v.type as string | undefined) ?? "",
      limit: intFlag("limit", v.limit, 1, 1000, 50),
      idPrefix: (v.prefix as string | undefined) ?? "",
      workflowId: (v.workflow as string | undefined) ?? "",
      label: (v.label as string | undefined) ?? "",
      order: v.oldest ? ListOrder.OLDEST_FIRST : ListOrder.NEWEST_FIRST,
      pageToken: (v["page-token"] as string | undefined) ?? "",
    });
    if (common.json) out(json(ListTasksResponseSchema, res));
    else {
      out(formatTaskTable(res.tasks, res.total));
      if (res.nextPageToken) out(`more: --page-token ${res.nextPageToken}`);
    }
    return 0;
  } finally {
    client.close();
  }
}

/** `cancel ID`: cancels a task; `cancel --filter ...` many (cancel-batch.ts). */
export async function cancelCommand(argv: readonly string[], out: Out): Promise<number> {
  const { values: v, positionals, common } = parseCommand(argv, cancelFlags);
  if (v.filter !== undefined || v.all === true) return cancelBatch(v, positionals, common, out);
  const id = positionals[0];
  if (!id || positionals.length > 1)
    throw new UsageError(
      "usage: spage-gateway cancel TASK_ID [--reason TEXT] | cancel --filter k=v,... [--yes]",
    );
  const client = openClient(common);
  try {
    const res = await client.api.cancelTask({ taskId: id, reason: (v.reason as string | undefined) ?? "" });
    if (common.json) out(json(CancelTaskResponseSchema, res));
    else {
      const after = await client.api.getTaskStatus({ taskId: id });
      out(
        `${id}: ${after.task ? (after.task.status === 5 ? "CANCELED" : "CANCELING (waiting for its daemon)") : "canceled"}`,
      );
    }
    return 0;
  } finally {
    client.close();
  }
}
