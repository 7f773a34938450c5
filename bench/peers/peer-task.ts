/**
 * What the peers and floors share: the one GetTaskStatus answer they give, handed over by the bench
 * in SPAGE_BENCH_RESPONSE (base64 of the binary GetTaskStatusResponse exactly as the gateway returned
 * it, so every server sends the same bytes), and how a peer says where it listens.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { type GetTaskStatusResponse, GetTaskStatusResponseSchema } from "../../gen/spage/api/tasks_pb.js";

/** The answer in SPAGE_BENCH_RESPONSE, as binary and decoded. */
export function benchResponseFromEnv(): { bytes: Buffer; message: GetTaskStatusResponse } {
  const b64 = process.env.SPAGE_BENCH_RESPONSE;
  if (!b64) throw new Error("SPAGE_BENCH_RESPONSE is not set");
  const bytes = Buffer.from(b64, "base64");
  const message = fromBinary(GetTaskStatusResponseSchema, bytes);
  if (!message.task) throw new Error("SPAGE_BENCH_RESPONSE has no task");
  return { bytes, message };
}

/** The in-memory map: task id -> answer. */
export function answersFromEnv(): Map<string, GetTaskStatusResponse> {
  const res = benchResponseFromEnv().message;
  return new Map([[res.task?.id ?? "", res]]);
}

/** Tells the bench the port, as one JSON line on stdout. */
export function announce(port: number): void {
  process.stdout.write(`${JSON.stringify({ port })}\n`);
}

/** Ends the process on SIGTERM once `close` is done (or after 2 s). */
export function exitOnSigterm(close: (done: () => void) => void): void {
  process.once("SIGTERM", () => {
    close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
