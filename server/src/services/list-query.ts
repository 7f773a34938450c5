/**
 * Turns a ListTasks request into a validated store query: defaults, bounds, status names, time
 * range, order and the page token.
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ListOrder as WireOrder } from "../../../gen/spage/api/tasks_pb.js";
import { TaskPriority } from "../../../gen/spage/core/common_pb.js";
import { parseStatusName } from "../domain/task-state.js";
import { checkTaskId, checkTimestamp, taskLimits, Violations } from "../domain/task-validation.js";
import type { ListOrder, TaskQuery } from "../store/task-store.js";
import { parseLabelFilter } from "./label-filter.js";
import { decodePageToken, filterFingerprint } from "./page-token.js";

/** Listing filters as they arrive on the wire. */
export interface ListInput {
  readonly limit: number;
  readonly offset: number;
  readonly status: string;
  readonly type: string;
  readonly priority?: TaskPriority;
  readonly createdAfter?: Timestamp;
  readonly createdBefore?: Timestamp;
  readonly idPrefix?: string;
  readonly order?: WireOrder;
  readonly pageToken?: string;
  readonly workflowId?: string;
  readonly label?: string;
}

/** Default and largest page sizes. */
export const listLimits = { defaultLimit: 50, maxLimit: 1000 } as const;

/** Validates a listing request; returns the store query and the fingerprint its page tokens carry. */
export function parseListInput(input: ListInput): { query: TaskQuery; fingerprint: string } {
  const v = new Violations();
  if (input.limit < 0 || input.limit > listLimits.maxLimit) {
    v.add(
      "limit",
      `must be between 1 and ${listLimits.maxLimit}, or 0 for ${listLimits.defaultLimit} (got ${input.limit})`,
    );
  }
  if (input.offset < 0) v.add("offset", `must not be negative (got ${input.offset})`);
  const status = input.status === "" ? undefined : parseStatusName(input.status);
  if (input.status !== "" && status === undefined) {
    v.add("status", `unknown status "${input.status}"; use e.g. PENDING, RUNNING, COMPLETED, FAILED`);
  }
  const priority = input.priority ?? TaskPriority.UNSPECIFIED;
  if (!(priority in TaskPriority)) v.add("priority", `unknown priority ${priority}`);
  const after =
    input.createdAfter && checkTimestamp(v, "created_after", input.createdAfter)
      ? timestampDate(input.createdAfter)
      : undefined;
  const before =
    input.createdBefore && checkTimestamp(v, "created_before", input.createdBefore)
      ? timestampDate(input.createdBefore)
      : undefined;
  if (after && before && after >= before) v.add("created_before", "must be later than created_after");
  const idPrefix = input.idPrefix ?? "";
  if (idPrefix.length > taskLimits.idMaxLength)
    v.add("id_prefix", `must be at most ${taskLimits.idMaxLength} characters`);
  const wireOrder = input.order ?? WireOrder.UNSPECIFIED;
  if (!(wireOrder in WireOrder)) v.add("order", `unknown order ${wireOrder}`);
  const order: ListOrder = wireOrder === WireOrder.OLDEST_FIRST ? "oldest" : "newest";
  if (input.pageToken && input.offset > 0) v.add("offset", "cannot be combined with page_token");
  checkTaskId(v, "workflow_id", input.workflowId ?? "", false);
  const label = parseLabelFilter(v, "label", input.label ?? "");
  v.throwIfAny();

  const query = {
    limit: input.limit === 0 ? listLimits.defaultLimit : input.limit,
    offset: input.offset,
    order,
    status,
    type: input.type || undefined,
    priority: priority === TaskPriority.UNSPECIFIED ? undefined : priority,
    createdAfter: after,
    createdBefore: before,
    idPrefix: idPrefix || undefined,
    workflowId: input.workflowId || undefined,
    label,
  };
  const fingerprint = filterFingerprint({
    status: query.status,
    type: query.type,
    priority: query.priority,
    after: after?.getTime(),
    before: before?.getTime(),
    idPrefix: query.idPrefix,
    ...(query.workflowId ? { workflowId: query.workflowId } : {}),
    ...(label ? { label: `${label.key}=${label.value}` } : {}),
  });
  const afterPosition = input.pageToken ? decodePageToken(input.pageToken, order, fingerprint) : undefined;
  return { query: { ...query, afterPosition }, fingerprint };
}
