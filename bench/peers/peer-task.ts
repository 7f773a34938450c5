/**
 * What both peers share: the one GetTaskStatus answer they give, handed over by the bench in
 * SPAGE_BENCH_RESPONSE (base64 of the binary GetTaskStatusResponse exactly as the gateway returned it,
 * so all three servers send the same bytes), and how a peer says where it listens.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { type GetTaskStatusResponse, GetTaskStatusResponseSchema } from "../../gen/spage/api/tasks_pb.js";

/** The in-memory map: task id -> answer. */
export function answersFromEnv(): Map<string, GetTaskStatusResponse> {
  const b64 = process.env.SPAGE_BENCH_RESPONSE;
  if (!b64) throw new Error("SPAGE_BENCH_RESPONSE is not set");
  const res = fromBinary(GetTaskStatusResponseSchema, Buffer.from(b64, "base64"));
  if (!res.task) throw new Error("SPAGE_BENCH_RESPONSE has no task");
  return new Map([[res.task.id, res]]);
}

/** Tells the bench the port, as one JSON line on stdout. */
export function announce(port: number): void {
  process.stdout.write(`${JSON.stringify({ port })}\n`);
}
