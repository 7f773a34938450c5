/**
 * Server-streaming scenarios (WatchEvents) of the differential corpus. The fast path serves
 * WatchEvents over native gRPC on HTTP/2 (fast-path/server-stream.ts); every other framing goes to
 * Connect's handler on both gateways and is covered here only where the fast path must leave it.
 * A watch never ends by itself, so each one carries a short grpc-timeout: the answer is the
 * replayed events and then DeadlineExceeded, or the error the call ends with first.
 */
import { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import { knownTaskId } from "./differential-fixtures.js";
import {
  binaryInput,
  envelope,
  pathOf,
  protocolHeaders,
  rawCall,
  type Scenario,
  scenario,
  unaryCall,
} from "./differential-scenario.js";

const watch = SpageAPI.method.watchEvents;
const path = pathOf(watch);
/** Long enough to replay a seeded task's events, short enough to keep the corpus quick. */
const deadline = { "grpc-timeout": "400m" };
const watchKnown = binaryInput(watch, { taskId: knownTaskId });

const grpcWatch = (message: object, headers: Readonly<Record<string, string>> = deadline) =>
  unaryCall("grpc", watch, message as never, headers);

export const streamScenarios: readonly Scenario[] = [
  scenario("grpc", "h2", "WatchEvents of a stored task until its deadline", {
    request: grpcWatch({ taskId: knownTaskId }),
  }),
  scenario("grpc", "h2", "WatchEvents as application/grpc+proto", {
    request: grpcWatch({ taskId: knownTaskId }, { ...deadline, "content-type": "application/grpc+proto" }),
  }),
  scenario("grpc", "h2", "WatchEvents accepting gzip", {
    request: grpcWatch({ taskId: knownTaskId }, { ...deadline, "grpc-accept-encoding": "gzip" }),
  }),
  scenario("grpc", "h2", "WatchEvents filtered by type", {
    request: grpcWatch({ taskId: knownTaskId, types: ["task.submitted"] }),
  }),
  scenario("grpc", "h2", "WatchEvents of an unknown task: no events, then DeadlineExceeded", {
    request: grpcWatch({ taskId: "diff-missing" }),
  }),
  scenario("grpc", "h2", "WatchEvents with 33 types: InvalidArgument", {
    request: grpcWatch({ types: Array.from({ length: 33 }, (_, i) => `t${i}`) }),
  }),
  scenario("grpc", "h2", "WatchEvents with an empty type: InvalidArgument", {
    request: grpcWatch({ types: [""] }),
  }),
  scenario("grpc", "h2", "WatchEvents with no message: missing input", {
    request: rawCall("grpc", path, new Uint8Array(0), deadline),
  }),
  scenario("grpc", "h2", "WatchEvents with two messages: extra input", {
    request: rawCall("grpc", path, Buffer.concat([envelope(watchKnown), envelope(watchKnown)]), deadline),
  }),
  scenario("grpc", "h2", "WatchEvents with a truncated envelope", {
    request: rawCall("grpc", path, envelope(watchKnown).subarray(0, 7), deadline),
  }),
  scenario("grpc", "h2", "WatchEvents with a message over readMaxBytes", {
    request: rawCall("grpc", path, envelope(new Uint8Array(5000)), deadline),
  }),
  scenario("grpc", "h2", "WatchEvents with an envelope flagged compressed", {
    request: rawCall("grpc", path, envelope(watchKnown, 1), deadline),
  }),
  scenario("grpc", "h2", "WatchEvents with bytes that are not a message", {
    request: rawCall("grpc", path, envelope(Buffer.from([0xff, 0xff, 0xff])), deadline),
  }),
  scenario("grpc", "h2", "WatchEvents with an invalid grpc-timeout", {
    request: grpcWatch({ taskId: knownTaskId }, { "grpc-timeout": "soon" }),
  }),
  scenario("grpc", "h2", "WatchEvents, then a unary call on the same session", {
    request: grpcWatch({ taskId: knownTaskId }),
    followUp: unaryCall("grpc", SpageAPI.method.getTaskStatus, { taskId: knownTaskId }),
  }),
  scenario("grpc", "h2", "WatchEvents with no credentials: Unauthenticated", {
    pair: "auth",
    request: grpcWatch({ taskId: knownTaskId }),
  }),
  scenario("grpc", "h2", "WatchEvents with a key the gateway never issued: Unauthenticated", {
    pair: "auth",
    credential: "unknown-key",
    request: grpcWatch({ taskId: knownTaskId }),
  }),
  scenario("grpc", "h2", "WatchEvents with a read-only key", {
    pair: "auth",
    credential: "read-only",
    request: grpcWatch({ taskId: knownTaskId }),
  }),
  scenario("grpc", "h2", "WatchEvents with no credentials and no message: Unauthenticated first", {
    pair: "auth",
    request: rawCall("grpc", path, new Uint8Array(0), deadline),
  }),
  scenario("grpc-web", "h2", "WatchEvents (left to Connect's handler)", {
    request: {
      method: "POST",
      path,
      headers: { ...protocolHeaders["grpc-web"], ...deadline },
      body: envelope(watchKnown),
    },
  }),
];
