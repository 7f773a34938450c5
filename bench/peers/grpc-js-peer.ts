/**
 * Reference peer: a plain @grpc/grpc-js server answering SpageAPI.GetTaskStatus from an in-memory
 * map, with a hand-built service definition whose (de)serializers are @bufbuild/protobuf's.
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  type GetTaskStatusRequest,
  GetTaskStatusRequestSchema,
  type GetTaskStatusResponse,
  GetTaskStatusResponseSchema,
} from "../../gen/spage/api/tasks_pb.js";
import { announce, answersFromEnv } from "./peer-task.js";

const answers = answersFromEnv();

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
  const res = answers.get(call.request.taskId);
  if (res) callback(null, res);
  else callback({ code: grpc.status.NOT_FOUND, details: `task ${call.request.taskId} not found` });
};

const server = new grpc.Server();
server.addService(definition, { getTaskStatus });
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  announce(port);
});
process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
