/**
 * What the paired-gateway phases (cost of authentication, cost of tracing) share: one side of a
 * pair (a gateway with a task of its own to read), its load target, and how long each side is
 * loaded in the interleaved run.
 */
import type { ServerProcess } from "./gateway.js";
import { apiClient, benchTaskType } from "./protocols.js";
import type { SteadyTarget } from "./steady-load.js";

/** Seconds each gateway of a pair is under load, in slices. */
export const busySeconds = 4;

/** One gateway of a pair, with the task its calls read. */
export interface Side {
  readonly label: string;
  readonly gw: ServerProcess;
  readonly taskId: string;
}

/** Submits the task a side reads and returns the side. */
export async function side(gw: ServerProcess, label: string): Promise<Side> {
  const client = apiClient("grpc", gw.baseUrl, gw.token);
  try {
    const { taskId } = await client.api.submitTask({
      type: benchTaskType,
      payload: { playbook: "site.yml" },
    });
    return { label, gw, taskId };
  } finally {
    client.close();
  }
}

/** The load target of a side. */
export const target = (s: Side): SteadyTarget => ({
  label: s.label,
  baseUrl: s.gw.baseUrl,
  pid: s.gw.pid,
  token: s.gw.token,
});
