/**
 * `watch`: follows events live, like `tail -f`. After a dropped connection it reconnects with
 * backoff and resumes from the last sequence it printed, so nothing is missed or printed twice.
 * With --until-end it exits when the watched task ends (exit code 0 if it COMPLETED, 1 otherwise).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { EventSchema, TaskStatus } from "../../../gen/spage/core/common_pb.js";
import { intFlag, parseCommand, UsageError } from "./cli-args.js";
import { formatEvent, json } from "./format.js";
import { openClient } from "./gateway-client.js";

const terminal = new Set(["COMPLETED", "FAILED", "CANCELED", "TIMED_OUT", "SKIPPED"]);

/** Runs `watch` until interrupted (or the task ends with --until-end). */
export async function watchCommand(
  argv: readonly string[],
  out: (text: string) => void,
  err: (text: string) => void,
  signal: AbortSignal,
): Promise<number> {
  const { values: v, common } = parseCommand(argv, {
    task: { type: "string" },
    type: { type: "string", multiple: true },
    after: { type: "string" },
    "until-end": { type: "boolean" },
  });
  const taskId = (v.task as string | undefined) ?? "";
  const untilEnd = v["until-end"] === true;
  if (untilEnd && !taskId) throw new UsageError("--until-end needs --task");
  let last = BigInt(intFlag("after", v.after, 0, Number.MAX_SAFE_INTEGER, 0));
  const client = openClient(common);
  let delay = 200;
  try {
    for (;;) {
      if (signal.aborted) return 0;
      try {
        if (untilEnd && last === 0n) {
          // Read, then watch from the sequence the read reflects: a task that already ended needs no watch.
          const now = await client.api.getTaskStatus({ taskId }, { signal });
          const status = now.task?.status ?? TaskStatus.UNSPECIFIED;
          if (terminal.has(TaskStatus[status] ?? "")) {
            out(`${taskId} ${TaskStatus[status]}`);
            return status === TaskStatus.COMPLETED ? 0 : 1;
          }
        }
        for await (const ev of client.api.watchEvents(
          { taskId, types: (v.type as string[] | undefined) ?? [], afterSequence: last },
          { signal },
        )) {
          last = ev.sequence;
          delay = 200;
          out(common.json ? json(EventSchema, ev) : formatEvent(ev, taskId === ""));
          if (untilEnd && ev.type === "task.status" && terminal.has(ev.data.to ?? "")) {
            return ev.data.to === "COMPLETED" ? 0 : 1;
          }
        }
      } catch (e) {
        if (signal.aborted) return 0;
        const ce = ConnectError.from(e);
        if (
          ce.code === Code.InvalidArgument ||
          ce.code === Code.NotFound ||
          ce.code === Code.PermissionDenied ||
          ce.code === Code.Unauthenticated
        ) {
          err(`spage-gateway watch: ${ce.rawMessage}`);
          return 1;
        }
        err(`watch: ${ce.rawMessage}; reconnecting from sequence ${last}`);
      }
      await new Promise((r) => setTimeout(r, delay * (0.75 + Math.random() * 0.5)));
      delay = Math.min(delay * 2, 5000);
    }
  } finally {
    client.close();
  }
}
