/**
 * Like-for-like reference: a plain @grpc/grpc-js server whose GetTaskStatus does the work the
 * gateway's implementation does: the task id checked as the task service checks it, the task read
 * through the gateway's own SQLite store (same statement, same row mapping) from the running
 * gateway's database file (SPAGE_BENCH_DB, opened as a second connection, as SQLite allows), and
 * the answer built from the record as the service builds it. It runs no authentication,
 * interceptors, logging or metrics: a plain grpc-js server doing the gateway's work for this call.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  type GetTaskStatusRequest,
  GetTaskStatusRequestSchema,
  type GetTaskStatusResponse,
  GetTaskStatusResponseSchema,
} from "../../gen/spage/api/tasks_pb.js";
import { checkTaskId, Violations } from "../../server/src/domain/task-validation.js";
import { openSqliteStore } from "../../server/src/store/sqlite-store.js";
import { announce, exitOnSigterm } from "./peer-task.js";

const path = process.env.SPAGE_BENCH_DB;
if (!path) throw new Error("SPAGE_BENCH_DB is not set");
const store = openSqliteStore({ path });

const definition: grpc.ServiceDefinition = {
  getTaskStatus: {
    path: "/spage.api.SpageAPI/GetTaskStatus",
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: GetTaskStatusRequest) => Buffer.from(toBinary(GetTaskStatusRequestSchema, m)),
    requestDeserialize: (b: Buffer) => fromBinary(GetTaskStatusRequestSchema, b),
    responseSerialize: (m: GetTaskStatusResponse) => Buffer.from(toBinary(GetTaskStatusResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(GetTaskStatusResponseSchema, b),
  },
};

const getTaskStatus: grpc.handleUnaryCall<GetTaskStatusRequest, GetTaskStatusResponse> = (call, callback) => {
  const taskId = call.request.taskId;
  try {
    const v = new Violations();
    checkTaskId(v, "task_id", taskId, true);
    v.throwIfAny();
  } catch (err) {
    callback({ code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message });
    return;
  }
  store.getTask(taskId).then(
    ({ record, sequence }) => {
      if (record) callback(null, create(GetTaskStatusResponseSchema, { task: record.task, sequence }));
      else callback({ code: grpc.status.NOT_FOUND, details: `task ${taskId} not found` });
    },
    (err: unknown) => callback({ code: grpc.status.INTERNAL, details: String(err) }),
  );
};

const server = new grpc.Server();
server.addService(definition, { getTaskStatus });
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  announce(port);
});
exitOnSigterm((done) => server.tryShutdown(() => store.close().finally(done)));
