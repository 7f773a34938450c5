/**
 * Reference peer: a plain @grpc/grpc-js server answering SpageAPI.GetTaskStatus from an in-memory
 * map, with a service definition whose (de)serializers are @bufbuild/protobuf's (grpc-js-method.ts).
 */
import * as grpc from "@grpc/grpc-js";
import {
  type GetTaskStatusRequest,
  type GetTaskStatusResponse,
  SpageAPI,
} from "../../gen/spage/api/tasks_pb.js";
import { grpcJsMethod } from "./grpc-js-method.js";
import { announce, answersFromEnv } from "./peer-task.js";

const answers = answersFromEnv();

const definition: grpc.ServiceDefinition = { getTaskStatus: grpcJsMethod(SpageAPI.method.getTaskStatus) };

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
