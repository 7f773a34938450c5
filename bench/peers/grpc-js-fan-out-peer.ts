/**
 * Reference peer for fan-out: a plain @grpc/grpc-js server implementing SpageAPI.WatchEvents (every
 * open stream is kept) and SpageAPI.SubmitTask as the trigger: a submit of task id X writes the
 * recorded event of X to every open stream and answers success. The events are the ones a gateway
 * sent for the same submits, read from SPAGE_BENCH_EVENTS_FILE (enveloped binary Event messages);
 * grpc-js serializes each write with @bufbuild/protobuf, as the gateway serializes each one.
 */
import { readFileSync } from "node:fs";
import { create, fromBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  SpageAPI,
  type SubmitTaskRequest,
  type SubmitTaskResponse,
  SubmitTaskResponseSchema,
  type WatchEventsRequest,
} from "../../gen/spage/api/tasks_pb.js";
import { type Event, EventSchema } from "../../gen/spage/core/common_pb.js";
import { grpcJsMethod } from "./grpc-js-method.js";
import { announce } from "./peer-task.js";

/** Task id -> the event the gateway sent for its submit. */
function eventsFromFile(): Map<string, Event> {
  const path = process.env.SPAGE_BENCH_EVENTS_FILE;
  if (!path) throw new Error("SPAGE_BENCH_EVENTS_FILE is not set");
  const buf = readFileSync(path);
  const events = new Map<string, Event>();
  for (let at = 0; at < buf.length; ) {
    const len = buf.readUInt32BE(at + 1);
    const ev = fromBinary(EventSchema, buf.subarray(at + 5, at + 5 + len));
    events.set(ev.taskId, ev);
    at += 5 + len;
  }
  return events;
}

const events = eventsFromFile();
const watchers = new Set<grpc.ServerWritableStream<WatchEventsRequest, Event>>();

const definition: grpc.ServiceDefinition = {
  watchEvents: grpcJsMethod(SpageAPI.method.watchEvents),
  submitTask: grpcJsMethod(SpageAPI.method.submitTask),
};

const watchEvents: grpc.handleServerStreamingCall<WatchEventsRequest, Event> = (call) => {
  watchers.add(call);
  call.once("cancelled", () => watchers.delete(call));
  call.once("close", () => watchers.delete(call));
};

const submitTask: grpc.handleUnaryCall<SubmitTaskRequest, SubmitTaskResponse> = (call, callback) => {
  const taskId = call.request.taskId;
  const ev = events.get(taskId);
  if (!ev) {
    callback({ code: grpc.status.NOT_FOUND, details: `no recorded event for task ${taskId}` });
    return;
  }
  for (const w of watchers) w.write(ev);
  callback(null, create(SubmitTaskResponseSchema, { success: true, taskId }));
};

const server = new grpc.Server();
server.addService(definition, { watchEvents, submitTask });
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  announce(port);
});
process.once("SIGTERM", () => {
  for (const w of watchers) w.end();
  server.tryShutdown(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
