/**
 * Like-for-like reference for the HTTP/1.1 protocols: a raw node:http server whose GetTaskStatus
 * does the work of the gateway's implementation and nothing else. It reads the whole body, decodes
 * the request (Connect JSON, or the gRPC-Web envelope), does the call's work (store-answer.ts: the
 * task id checked, the task read from the running gateway's database file, the answer built), and
 * encodes the answer as the gateway does (Connect JSON, or the enveloped message and the trailer
 * frame). No routing, authentication, interceptors, logging, metrics, deadlines or limits: a plain
 * server doing the gateway's work for this call.
 */
import * as http from "node:http";
import { fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import { GetTaskStatusRequestSchema, GetTaskStatusResponseSchema } from "../../gen/spage/api/tasks_pb.js";
import { envelope, grpcWebOkTrailer } from "../grpc-frames.js";
import { announce, exitOnSigterm } from "./peer-task.js";
import { openBenchStore, storeAnswer } from "./store-answer.js";

const store = openBenchStore();
const okTrailer = grpcWebOkTrailer();

/** The answer body and content type for a request body, or an error text (answered 400). */
async function answer(grpcWeb: boolean, body: Buffer): Promise<{ type: string; body: Buffer } | string> {
  const req = grpcWeb
    ? fromBinary(GetTaskStatusRequestSchema, body.subarray(5, 5 + body.readUInt32BE(1)))
    : fromJsonString(GetTaskStatusRequestSchema, body.toString("utf8"));
  const res = await storeAnswer(store, req.taskId);
  if (!res) return `task ${req.taskId} not found`;
  return grpcWeb
    ? {
        type: "application/grpc-web+proto",
        body: Buffer.concat([envelope(toBinary(GetTaskStatusResponseSchema, res)), okTrailer]),
      }
    : { type: "application/json", body: Buffer.from(toJsonString(GetTaskStatusResponseSchema, res)) };
}

const server = http.createServer({ noDelay: true }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const grpcWeb = req.headers["content-type"]?.startsWith("application/grpc-web") === true;
    answer(grpcWeb, Buffer.concat(chunks)).then(
      (a) => {
        if (typeof a === "string") res.writeHead(404).end(a);
        else res.writeHead(200, { "content-type": a.type, "content-length": a.body.length }).end(a.body);
      },
      (err: unknown) => res.writeHead(400).end(String(err)),
    );
  });
});
server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  announce(typeof addr === "object" && addr ? addr.port : 0);
});
exitOnSigterm((done) => server.close(() => store.close().finally(done)));
