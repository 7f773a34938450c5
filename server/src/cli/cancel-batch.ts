/**
 * `cancel --filter k=v,... [--all] [--yes]`: cancels many tasks with CancelTasks. It first counts
 * with a dry run and shows the count, asks on a terminal (or takes --yes), then cancels exactly the
 * tasks it counted (by id), and prints each one's outcome and the totals.
 */
import { createInterface } from "node:readline/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  CancelTasksResponseSchema,
  type TaskFilter,
  type TaskFilterSchema,
} from "../../../gen/spage/api/tasks_pb.js";
import { type CommonFlags, intFlag, priorities, UsageError } from "./cli-args.js";
import { json, statusText } from "./format.js";
import { openClient } from "./gateway-client.js";

type Out = (text: string) => void;

/** The flags of `cancel`, single or batch. */
export const cancelFlags = {
  reason: { type: "string" },
  filter: { type: "string" },
  all: { type: "boolean" },
  yes: { type: "boolean", short: "y" },
  limit: { type: "string" },
  "dry-run": { type: "boolean" },
} as const;

/** Filter keys as the command line writes them, and the TaskFilter field each sets. */
const filterKeys: Record<string, keyof Omit<TaskFilter, "$typeName" | "$unknown" | "priority">> = {
  status: "status",
  type: "type",
  workflow: "workflowId",
  workflow_id: "workflowId",
  "id-prefix": "idPrefix",
  id_prefix: "idPrefix",
  prefix: "idPrefix",
  label: "label",
};

/** Parses `status=PENDING,type=x,label=team=web` into a TaskFilter's fields. */
export function parseFilter(text: string): MessageInitShape<typeof TaskFilterSchema> {
  const filter: Record<string, unknown> = {};
  for (const part of text.split(",")) {
    if (part.trim() === "") continue;
    const i = part.indexOf("=");
    const key = i < 0 ? part : part.slice(0, i);
    const value = i < 0 ? "" : part.slice(i + 1);
    if (key === "priority") {
      const p = priorities[value.toLowerCase()];
      if (p === undefined)
        throw new UsageError(`invalid --filter priority "${value}": use low, normal, high or critical`);
      filter.priority = p;
      continue;
    }
    const field = filterKeys[key];
    if (!field || i < 0)
      throw new UsageError(
        `invalid --filter "${part}": expected key=value with key status, type, priority, workflow, id-prefix or label (label=k=v)`,
      );
    filter[field] = value;
  }
  return filter as MessageInitShape<typeof TaskFilterSchema>;
}

/** Asks a yes/no question on the terminal; true for y or yes. */
async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(question);
    return /^(y|yes)$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** Runs `cancel --filter`. */
export async function cancelBatch(
  v: Record<string, string | boolean | string[] | undefined>,
  positionals: readonly string[],
  common: CommonFlags,
  out: Out,
): Promise<number> {
  if (positionals.length > 0) throw new UsageError("give either a TASK_ID or --filter, not both");
  const filter = parseFilter((v.filter as string | undefined) ?? "");
  const all = v.all === true;
  if (Object.keys(filter).length === 0 && !all)
    throw new UsageError(
      "--filter sets nothing: it would match every task that has not ended; add --all to mean that",
    );
  const limit = intFlag("limit", v.limit, 1, 1000, 100);
  const reason = (v.reason as string | undefined) ?? "";
  const client = openClient(common);
  try {
    const counted = await client.api.cancelTasks({ filter, all, limit, dryRun: true, reason });
    const ids = counted.results.filter((r) => r.success).map((r) => r.taskId);
    const beyond = counted.remaining > 0 ? ` (${counted.remaining} more match beyond --limit ${limit})` : "";
    if (v["dry-run"] === true) {
      if (common.json) out(json(CancelTasksResponseSchema, counted));
      else {
        for (const r of counted.results) out(`${r.taskId}  ${statusText(r.status)}`);
        out(`${ids.length} task(s) would be canceled${beyond}`);
      }
      return 0;
    }
    if (ids.length === 0) {
      out(`no task matches${beyond}`);
      return 0;
    }
    if (v.yes !== true) {
      if (!process.stdin.isTTY)
        throw new UsageError(
          `${ids.length} task(s) match${beyond}; not canceled: add --yes to cancel them without being asked`,
        );
      if (!(await confirm(`Cancel ${ids.length} task(s)${beyond}? [y/N] `))) {
        out("nothing canceled");
        return 1;
      }
    }
    const res = await client.api.cancelTasks({ taskIds: ids, limit: Math.max(ids.length, 1), reason });
    if (common.json) out(json(CancelTasksResponseSchema, res));
    else {
      for (const r of res.results) {
        out(r.success ? `${r.taskId}  ${statusText(r.status)}` : `${r.taskId}  not canceled: ${r.error}`);
      }
      const failed = res.results.length - res.canceled;
      out(`${res.canceled} canceled${failed > 0 ? `, ${failed} not` : ""}${beyond}`);
    }
    return res.canceled === res.results.length ? 0 : 1;
  } finally {
    client.close();
  }
}
