/**
 * Floor for the HTTP/1.1 protocols: a raw node:http server that answers every POST, without reading
 * what was asked beyond its content type, with a fixed GetTaskStatus answer: for gRPC-Web
 * (`application/grpc-web*`) the enveloped SPAGE_BENCH_RESPONSE message and the trailer frame
 * `grpc-status: 0`, for anything else the gateway's Connect JSON body (toJsonString of the same
 * answer). No routing, no decoding: what Node's HTTP/1.1 alone costs per call.
 */
import * as http from "node:http";
import { toJsonString } from "@bufbuild/protobuf";
import { GetTaskStatusResponseSchema } from "../../gen/spage/api/tasks_pb.js";
import { envelope, grpcWebOkTrailer } from "../grpc-frames.js";
import { announce, benchResponseFromEnv, exitOnSigterm } from "./peer-task.js";

const answer = benchResponseFromEnv();
const grpcWebBody = Buffer.concat([envelope(answer.bytes), grpcWebOkTrailer()]);
const jsonBody = Buffer.from(toJsonString(GetTaskStatusResponseSchema, answer.message));
const grpcWebHeaders = { "content-type": "application/grpc-web+proto", "content-length": grpcWebBody.length };
const jsonHeaders = { "content-type": "application/json", "content-length": jsonBody.length };

const server = http.createServer({ noDelay: true }, (req, res) => {
  // The request body is drained, never decoded.
  req.resume();
  if (req.method !== "POST") {
    res.writeHead(405).end();
    return;
  }
  if (req.headers["content-type"]?.startsWith("application/grpc-web")) {
    res.writeHead(200, grpcWebHeaders).end(grpcWebBody);
  } else {
    res.writeHead(200, jsonHeaders).end(jsonBody);
  }
});
server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  announce(typeof addr === "object" && addr ? addr.port : 0);
});
exitOnSigterm((done) => server.close(() => done()));
