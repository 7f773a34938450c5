/**
 * What the same-work peers share: the gateway's GetTaskStatus work on the running gateway's database
 * file (SPAGE_BENCH_DB, opened as a second connection through the gateway's own SQLite store): the
 * task id checked as the task service checks it, the task read, the answer built from the record.
 */
import { create } from "@bufbuild/protobuf";
import { type GetTaskStatusResponse, GetTaskStatusResponseSchema } from "../../gen/spage/api/tasks_pb.js";
import { checkTaskId, Violations } from "../../server/src/domain/task-validation.js";
import type { GatewayStore } from "../../server/src/store/gateway-store.js";
import { openSqliteStore } from "../../server/src/store/sqlite/sqlite-store.js";

/** The gateway's store on the file in SPAGE_BENCH_DB. */
export function openBenchStore(): GatewayStore {
  const path = process.env.SPAGE_BENCH_DB;
  if (!path) throw new Error("SPAGE_BENCH_DB is not set");
  return openSqliteStore({ path });
}

/**
 * The GetTaskStatus answer for `taskId`, or undefined when there is no such task; throws the task
 * service's InvalidArgumentError for a bad id.
 */
export async function storeAnswer(
  store: GatewayStore,
  taskId: string,
): Promise<GetTaskStatusResponse | undefined> {
  const v = new Violations();
  checkTaskId(v, "task_id", taskId, true);
  v.throwIfAny();
  const { record, sequence } = await store.getTask(taskId);
  return record && create(GetTaskStatusResponseSchema, { task: record.task, sequence });
}
