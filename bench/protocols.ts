/**
 * The three protocols under load, as raw requests for the load tools (path, headers, body bytes) and
 * as real connect-node clients for the checks.
 */
import { create, type DescMessage, type MessageShape, toBinary, toJson } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { GetTaskStatusRequestSchema, SpageAPI, SubmitTaskRequestSchema } from "../gen/spage/api/tasks_pb.js";
import { envelope } from "./grpc-frames.js";

export type Protocol = "grpc" | "connect-json" | "grpc-web";
export type Method = "GetTaskStatus" | "SubmitTask";

/** Labels used in the tables. */
export const protocolLabel: Record<Protocol, string> = {
  grpc: "gRPC (h2c)",
  "connect-json": "Connect JSON (HTTP/1.1)",
  "grpc-web": "gRPC-Web (HTTP/1.1)",
};

/** A request as the load tools send it. */
export interface RawRequest {
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/** The task type every bench submit uses. */
export const benchTaskType = "bench";

function requestMessage(
  method: Method,
  taskId: string,
): { schema: DescMessage; msg: MessageShape<DescMessage> } {
  return method === "GetTaskStatus"
    ? { schema: GetTaskStatusRequestSchema, msg: create(GetTaskStatusRequestSchema, { taskId }) }
    : // task_id left empty: every call creates a new task.
      { schema: SubmitTaskRequestSchema, msg: create(SubmitTaskRequestSchema, { type: benchTaskType }) };
}

/**
 * The raw request of `method` over `protocol` (taskId only matters for GetTaskStatus), with
 * `Authorization: Bearer <token>` when a token is given.
 */
export function rawRequest(protocol: Protocol, method: Method, taskId = "", token = ""): RawRequest {
  const r = unauthenticatedRequest(protocol, method, taskId);
  return token ? { ...r, headers: { ...r.headers, authorization: `Bearer ${token}` } } : r;
}

function unauthenticatedRequest(protocol: Protocol, method: Method, taskId: string): RawRequest {
  const path = `/${SpageAPI.typeName}/${method}`;
  const { schema, msg } = requestMessage(method, taskId);
  switch (protocol) {
    case "grpc":
      return {
        path,
        headers: { "content-type": "application/grpc", te: "trailers" },
        body: envelope(toBinary(schema, msg)),
      };
    case "grpc-web":
      return {
        path,
        headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
        body: envelope(toBinary(schema, msg)),
      };
    case "connect-json":
      return {
        path,
        headers: { "content-type": "application/json", "connect-protocol-version": "1" },
        body: Buffer.from(JSON.stringify(toJson(schema, msg))),
      };
  }
}

/** A real client over one protocol, with a close() for its HTTP/2 session if it has one. */
export interface ApiClient {
  readonly api: Client<typeof SpageAPI>;
  close(): void;
}

/** A connect interceptor sending `Authorization: Bearer <token>` (none for an empty token). */
export function bearer(token: string): Interceptor[] {
  if (!token) return [];
  return [
    (next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    },
  ];
}

/**
 * A SpageAPI client speaking `protocol` the way the load tool does (h2c for gRPC, HTTP/1.1
 * otherwise), sending `token` when given.
 */
export function apiClient(protocol: Protocol, baseUrl: string, token = ""): ApiClient {
  let transport: Transport;
  let close = () => {};
  const interceptors = bearer(token);
  switch (protocol) {
    case "grpc": {
      const sessionManager = new Http2SessionManager(baseUrl);
      transport = createGrpcTransport({ baseUrl, sessionManager, interceptors });
      close = () => sessionManager.abort();
      break;
    }
    case "grpc-web":
      transport = createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors });
      break;
    case "connect-json":
      // JSON, as the load tool sends (connect-node's Connect transport defaults to binary).
      transport = createConnectTransport({
        baseUrl,
        httpVersion: "1.1",
        useBinaryFormat: false,
        interceptors,
      });
      break;
  }
  return { api: createClient(SpageAPI, transport), close };
}
