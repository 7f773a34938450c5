/**
 * Like-for-like reference: a plain @grpc/grpc-js server doing GetTaskStatus its own plain way, with
 * no code of the gateway's. The service comes from proto/ through @grpc/proto-loader; each call
 * checks the id, reads the task row from the running gateway's database file with one prepared
 * better-sqlite3 statement, parses its JSON columns and hands the plain object to proto-loader's
 * serializer (plain-task-read.ts). No authentication, interceptors, logging or metrics.
 */
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { announce, exitOnSigterm } from "./peer-task.js";
import { openPlainTaskRead, plainTaskObject, validTaskId } from "./plain-task-read.js";

const protoDir = fileURLToPath(new URL("../../proto/", import.meta.url));
const definition = protoLoader.loadSync("spage/api/tasks.proto", {
  includeDirs: [protoDir],
  longs: Number,
  enums: Number,
  defaults: false,
});
const api = (grpc.loadPackageDefinition(definition).spage as grpc.GrpcObject).api as grpc.GrpcObject;
const service = (api.SpageAPI as grpc.ServiceClientConstructor).service;

const tasks = openPlainTaskRead();

const getTaskStatus: grpc.handleUnaryCall<{ taskId?: string }, Record<string, unknown>> = (
  call,
  callback,
) => {
  const taskId = call.request.taskId ?? "";
  if (!validTaskId(taskId)) {
    callback({ code: grpc.status.INVALID_ARGUMENT, details: "task_id: 1 to 128 printable ASCII characters" });
    return;
  }
  const row = tasks.read(taskId);
  if (!row) callback({ code: grpc.status.NOT_FOUND, details: `task ${taskId} not found` });
  else callback(null, plainTaskObject(row));
};

const server = new grpc.Server();
server.addService(service, { getTaskStatus });
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  announce(port);
});
exitOnSigterm((done) =>
  server.tryShutdown(() => {
    tasks.close();
    done();
  }),
);
