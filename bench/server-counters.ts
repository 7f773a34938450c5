/**
 * What the gateway itself counts, read before and after a run to prove what the load tools cannot
 * see: RPC outcomes (GetMetrics `rpc_<code>_total`), stored tasks (ListTasks `total`) and submits.
 */
import type { ApiClient } from "./protocols.js";

export interface Counters {
  /** ListTasks total. */
  readonly tasks: number;
  /** rpc_ok_total, or undefined when the gateway does not count RPCs. */
  readonly ok?: number;
  /** Sum of every other rpc_<code>_total. */
  readonly notOk?: number;
  /** tasks_submitted_total, when counted. */
  readonly submitted?: number;
  /** fast_path_calls_total: calls the unary fast path served (undefined: none yet, or no fast path). */
  readonly fastPath?: number;
}

async function rpcTotals(
  client: ApiClient,
): Promise<{ ok?: number; notOk?: number; submitted?: number; fastPath?: number }> {
  const m = await client.api.getMetrics({});
  let ok: number | undefined;
  let notOk: number | undefined;
  for (const [name, value] of Object.entries(m.counters)) {
    const code = /^rpc_(.+)_total$/.exec(name)?.[1];
    if (code === undefined) continue;
    if (code === "ok") ok = value;
    else notOk = (notOk ?? 0) + value;
  }
  if (ok !== undefined) notOk ??= 0;
  return {
    ok,
    notOk,
    submitted: m.counters.tasks_submitted_total,
    fastPath: m.counters.fast_path_calls_total,
  };
}

/** Reads the counters: GetMetrics, then ListTasks (so 2 OK calls of ours fall between two reads). */
export async function readCounters(client: ApiClient): Promise<Counters> {
  const rpc = await rpcTotals(client);
  const res = await client.api.listTasks({ limit: 1 });
  return { ...rpc, tasks: res.total };
}

/**
 * OK calls the bench itself makes between two readCounters() snapshots (for fast_path_calls_total,
 * counted when a call is admitted: the first read's ListTasks and the second's GetMetrics).
 */
export const ownCallsBetweenReads = 2;

/**
 * Waits until calls cut off by a timed run (still being handled when the tool stopped) are done:
 * the RPC totals move by nothing but our own GetMetrics between two reads. Without RPC counters,
 * waits until the task count stands still.
 */
export async function settle(client: ApiClient, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let prev = await rpcTotals(client);
  let prevTasks = (await client.api.listTasks({ limit: 1 })).total;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const cur = await rpcTotals(client);
    const tasks = (await client.api.listTasks({ limit: 1 })).total;
    const still =
      cur.ok === undefined
        ? tasks === prevTasks
        : cur.notOk === prev.notOk && (cur.ok ?? 0) - (prev.ok ?? 0) === 2 && tasks === prevTasks;
    if (still) return;
    prev = cur;
    prevTasks = tasks;
  }
}
