/**
 * Clients of every protocol that send a `traceparent` with their calls, for the tracing tests:
 * grpc-js (native gRPC), connect-node (gRPC-Web over HTTP/1.1, Connect binary over HTTP/2, Connect
 * JSON over HTTP/1.1) and fetch with Connect JSON.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  type GetTaskStatusRequest,
  GetTaskStatusRequestSchema,
  GetTaskStatusResponseSchema,
  SpageAPI,
  type SubmitTaskRequest,
  SubmitTaskRequestSchema,
  SubmitTaskResponseSchema,
} from "../../../gen/spage/api/tasks_pb.js";

/** A caller's trace context: a fresh trace id and the caller's own span id. */
export function callerContext(): { traceId: string; spanId: string; header: string } {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

/** A Connect interceptor setting header `name` to `value()` on every call. */
export const withHeader =
  (name: string, value: () => string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set(name, value());
    return next(req);
  };

/** A SubmitTask and a GetTaskStatus by some client, each sent with `traceparent`. */
export interface TracedClient {
  readonly protocol: string;
  submit(traceparent: string): Promise<string>;
  /** Resolves with the error's code name for an unknown task. */
  getUnknown(traceparent: string): Promise<void>;
  close(): void;
}

function connectClient(
  protocol: string,
  make: (i: Interceptor[]) => Transport,
  close: () => void = () => {},
): TracedClient {
  let header = "";
  const api: Client<typeof SpageAPI> = createClient(
    SpageAPI,
    make([withHeader("traceparent", () => header)]),
  );
  return {
    protocol,
    async submit(tp) {
      header = tp;
      return (await api.submitTask({ type: "job" })).taskId;
    },
    async getUnknown(tp) {
      header = tp;
      await api.getTaskStatus({ taskId: "no-such-task" }).then(
        () => assert.fail("GetTaskStatus of an unknown task succeeded"),
        () => undefined,
      );
    },
    close,
  };
}

function grpcJsClient(url: string): TracedClient {
  const client = new grpc.Client(new URL(url).host, grpc.credentials.createInsecure());
  const unary = <I, O>(path: string, enc: (i: I) => Buffer, dec: (b: Buffer) => O, req: I, tp: string) =>
    new Promise<O>((resolve, reject) => {
      const md = new grpc.Metadata();
      md.set("traceparent", tp);
      client.makeUnaryRequest(path, enc, dec, req, md, { deadline: Date.now() + 5000 }, (err, res) =>
        err ? reject(err) : resolve(res as O),
      );
    });
  return {
    protocol: "grpc",
    async submit(tp) {
      const res = await unary(
        "/spage.api.SpageAPI/SubmitTask",
        (m: SubmitTaskRequest) => Buffer.from(toBinary(SubmitTaskRequestSchema, m)),
        (b) => fromBinary(SubmitTaskResponseSchema, b),
        create(SubmitTaskRequestSchema, { type: "job" }),
        tp,
      );
      return res.taskId;
    },
    async getUnknown(tp) {
      await unary(
        "/spage.api.SpageAPI/GetTaskStatus",
        (m: GetTaskStatusRequest) => Buffer.from(toBinary(GetTaskStatusRequestSchema, m)),
        (b) => fromBinary(GetTaskStatusResponseSchema, b),
        create(GetTaskStatusRequestSchema, { taskId: "no-such-task" }),
        tp,
      ).then(
        () => assert.fail("GetTaskStatus of an unknown task succeeded"),
        (err: grpc.ServiceError) => assert.equal(err.code, grpc.status.NOT_FOUND),
      );
    },
    close: () => client.close(),
  };
}

/** Plain fetch with Connect JSON over HTTP/1.1. */
export function fetchClient(url: string): TracedClient {
  const post = (method: string, body: unknown, tp: string) =>
    fetch(`${url}/spage.api.SpageAPI/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: tp },
      body: JSON.stringify(body),
    });
  return {
    protocol: "connect+json",
    async submit(tp) {
      const res = await post("SubmitTask", { type: "job" }, tp);
      assert.equal(res.status, 200);
      return ((await res.json()) as { taskId: string }).taskId;
    },
    async getUnknown(tp) {
      const res = await post("GetTaskStatus", { taskId: "no-such-task" }, tp);
      assert.equal(res.status, 404);
      await res.arrayBuffer();
    },
    close() {},
  };
}

/** One client of each protocol; `close` each when done. */
export function everyClient(url: string): TracedClient[] {
  const sessionManager = new Http2SessionManager(url);
  return [
    grpcJsClient(url),
    connectClient("grpc-web", (interceptors) =>
      createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", interceptors }),
    ),
    connectClient(
      "connect+proto",
      (interceptors) =>
        createConnectTransport({
          baseUrl: url,
          httpVersion: "2",
          useBinaryFormat: true,
          sessionManager,
          interceptors,
        }),
      () => sessionManager.abort(),
    ),
    connectClient("connect+json", (interceptors) =>
      createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: false, interceptors }),
    ),
    fetchClient(url),
  ];
}
