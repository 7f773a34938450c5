/**
 * Like-for-like reference for the HTTP/1.1 protocols: a raw node:http server doing GetTaskStatus
 * its own plain way, with no code of the gateway's. It reads the whole body, decodes the request
 * (Connect JSON, or the gRPC-Web envelope), checks the id, reads the task row from the running
 * gateway's database file with one prepared better-sqlite3 statement and builds the answer from it
 * (plain-task-read.ts), and encodes it (Connect JSON, or the enveloped message and the trailer
 * frame). No routing, authentication, interceptors, logging, metrics, deadlines or limits.
 */
import * as http from "node:http";
import { fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import { GetTaskStatusRequestSchema, GetTaskStatusResponseSchema } from "../../gen/spage/api/tasks_pb.js";
import { envelope, grpcWebOkTrailer } from "../grpc-frames.js";
import { announce, exitOnSigterm } from "./peer-task.js";
import { openPlainTaskRead, plainTaskMessage, validTaskId } from "./plain-task-read.js";

const tasks = openPlainTaskRead();
const okTrailer = grpcWebOkTrailer();

/** The answer body and content type for a request body, or an error text (answered 400). */
function answer(grpcWeb: boolean, body: Buffer): { type: string; body: Buffer } | string {
  const req = grpcWeb
    ? fromBinary(GetTaskStatusRequestSchema, body.subarray(5, 5 + body.readUInt32BE(1)))
    : fromJsonString(GetTaskStatusRequestSchema, body.toString("utf8"));
  if (!validTaskId(req.taskId)) throw new Error("task_id: 1 to 128 printable ASCII characters");
  const row = tasks.read(req.taskId);
  if (!row) return `task ${req.taskId} not found`;
  const res = plainTaskMessage(row);
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
    let a: ReturnType<typeof answer>;
    try {
      a = answer(grpcWeb, Buffer.concat(chunks));
    } catch (err) {
      res.writeHead(400).end(String(err));
      return;
    }
    if (typeof a === "string") res.writeHead(404).end(a);
    else res.writeHead(200, { "content-type": a.type, "content-length": a.body.length }).end(a.body);
  });
});
server.listen(0, "127.0.0.1", () => {
  const addr = server.address();
  announce(typeof addr === "object" && addr ? addr.port : 0);
});
exitOnSigterm((done) =>
  server.close(() => {
    tasks.close();
    done();
  }),
);
