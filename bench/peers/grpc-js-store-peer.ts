/**
 * Like-for-like reference: a plain @grpc/grpc-js server whose GetTaskStatus does the work the
 * gateway's implementation does (store-answer.ts): the task id checked as the task service checks
 * it, the task read through the gateway's own SQLite store from the running gateway's database file,
 * and the answer built from the record. It runs no authentication, interceptors, logging or
 * metrics: a plain grpc-js server doing the gateway's work for this call.
 */
import * as grpc from "@grpc/grpc-js";
import {
  type GetTaskStatusRequest,
  type GetTaskStatusResponse,
  SpageAPI,
} from "../../gen/spage/api/tasks_pb.js";
import { InvalidArgumentError } from "../../server/src/domain/errors.js";
import { grpcJsMethod } from "./grpc-js-method.js";
import { announce, exitOnSigterm } from "./peer-task.js";
import { openBenchStore, storeAnswer } from "./store-answer.js";

const store = openBenchStore();

const definition: grpc.ServiceDefinition = { getTaskStatus: grpcJsMethod(SpageAPI.method.getTaskStatus) };

const getTaskStatus: grpc.handleUnaryCall<GetTaskStatusRequest, GetTaskStatusResponse> = (call, callback) => {
  const taskId = call.request.taskId;
  storeAnswer(store, taskId).then(
    (res) => {
      if (res) callback(null, res);
      else callback({ code: grpc.status.NOT_FOUND, details: `task ${taskId} not found` });
    },
    (err: unknown) =>
      callback({
        code: err instanceof InvalidArgumentError ? grpc.status.INVALID_ARGUMENT : grpc.status.INTERNAL,
        details: String(err),
      }),
  );
};

const server = new grpc.Server();
server.addService(definition, { getTaskStatus });
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  announce(port);
});
exitOnSigterm((done) => server.tryShutdown(() => store.close().finally(done)));
