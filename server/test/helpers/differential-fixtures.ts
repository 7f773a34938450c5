/**
 * Tasks stored on every gateway of the differential suite before the first scenario, with fixed ids
 * so both gateways of a pair hold the same tasks and answer about them alike: one PENDING task, one
 * that has ended (CANCELED), and a batch for listings large enough to be compressed.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { callJson } from "./differential-pair.js";
import type { TestServer } from "./test-server.js";

/** A PENDING task. */
export const knownTaskId = "diff-known";
/** The request that made it; sending it again is an idempotent no-op. */
export const knownTaskRequest: JsonObject = {
  taskId: knownTaskId,
  type: "playbook",
  priority: "TASK_PRIORITY_HIGH",
  payload: { playbook: "site.yml", inventory: "hosts.ini" },
  metadata: { owner: "differential" },
};
/** A task that ended CANCELED (cancelling it again is FAILED_PRECONDITION). */
export const endedTaskId = "diff-ended";
/** Id prefix and type of the listing batch. */
export const listPrefix = "diff-list-";
/** Tasks in the listing batch: their ListTasks answer is several KiB, well over compressMinBytes. */
export const listSize = 40;

/** Stores the fixture tasks on `server` (`key`: admin key, or "" with auth off). */
export async function seedTasks(server: TestServer, key: string, opts: { listing: boolean }): Promise<void> {
  const api = "/spage.api.SpageAPI";
  await callJson(server, key, `${api}/SubmitTask`, knownTaskRequest);
  await callJson(server, key, `${api}/SubmitTask`, { taskId: endedTaskId, type: "playbook" });
  await callJson(server, key, `${api}/CancelTask`, { taskId: endedTaskId, reason: "fixture" });
  if (!opts.listing) return;
  // One after the other: the listing's order (and its page positions) must be the same on both.
  for (let i = 0; i < listSize; i++) {
    const n = String(i).padStart(2, "0");
    await callJson(server, key, `${api}/SubmitTask`, {
      taskId: `${listPrefix}${n}`,
      type: "diff-list",
      priority: "TASK_PRIORITY_NORMAL",
      payload: { playbook: `list-${n}.yml`, inventory: "inventories/production/hosts.ini" },
    });
  }
}
