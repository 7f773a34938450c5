/**
 * Differential scenarios with requests that are wrong somewhere: unknown services and methods,
 * HTTP methods other than POST (including Connect GET, which only methods marked NO_SIDE_EFFECTS
 * accept, and none of ours is), wrong or missing content types, broken envelopes, malformed
 * protobuf and JSON, and clients that give up mid-request (stream reset, connection closed), each
 * followed by a call that shows the gateway still serves.
 */
import { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import type { RawRequest } from "./differential-client.js";
import { knownTaskId } from "./differential-fixtures.js";
import {
  binaryInput,
  envelope,
  pathOf,
  rawCall,
  type Scenario,
  scenario,
  unaryCall,
} from "./differential-scenario.js";

const api = SpageAPI.method;

const healthPath = pathOf(api.healthCheck);
const getPath = pathOf(api.getTaskStatus);
const knownBinary = binaryInput(api.getTaskStatus, { taskId: knownTaskId });
const unknownMethod = "/spage.api.SpageAPI/Nope";
const unknownService = "/no.such.Service/Method";

const unknownPaths: Scenario[] = [
  ...(
    [
      ["grpc", "h2", unknownMethod],
      ["grpc", "h1", unknownService],
      ["grpc-web", "h2", unknownService],
      ["grpc-web", "h1", unknownMethod],
      ["connect-proto", "h2", unknownMethod],
      ["connect-json", "h2", unknownService],
      ["connect-json", "h1", unknownMethod],
    ] as const
  ).map(([p, t, path]) =>
    scenario(p, t, `unknown ${path === unknownMethod ? "method" : "service"} ${path}`, {
      request: rawCall(
        p,
        path,
        p === "connect-json" ? "{}" : p === "connect-proto" ? "" : envelope(Buffer.alloc(0)),
      ),
    }),
  ),
  scenario("connect-json", "h1", "method name in the wrong case (getTaskStatus)", {
    request: rawCall(
      "connect-json",
      "/spage.api.SpageAPI/getTaskStatus",
      JSON.stringify({ taskId: knownTaskId }),
    ),
  }),
  scenario("grpc", "h2", "method path with a trailing slash", {
    request: rawCall("grpc", `${getPath}/`, envelope(knownBinary)),
  }),
];

const get = (path: string): RawRequest => ({ method: "GET", path, headers: {}, body: new Uint8Array(0) });
const connectGetQuery = (message: string, extra: Record<string, string> = {}) =>
  new URLSearchParams({ connect: "v1", encoding: "json", message, ...extra }).toString();

const httpMethods: Scenario[] = [
  ...(["h2", "h1"] as const).map((t) =>
    scenario("connect-get", t, "Connect GET of HealthCheck (not NO_SIDE_EFFECTS)", {
      request: unaryCall("connect-get", api.healthCheck, {}),
    }),
  ),
  scenario("connect-get", "h1", "Connect GET of GetTaskStatus, base64 binary message", {
    request: get(
      `${getPath}?${connectGetQuery(Buffer.from(knownBinary).toString("base64url"), { encoding: "proto", base64: "1" })}`,
    ),
  }),
  scenario("connect-get", "h2", "Connect GET of an unknown method", {
    request: get(`${unknownMethod}?${connectGetQuery("{}")}`),
  }),
  ...(["h2", "h1"] as const).map((t) =>
    scenario("http", t, "GET of an RPC path without a query", { request: get(healthPath) }),
  ),
  ...(["h2", "h1"] as const).map((t) =>
    scenario("http", t, "PUT with a Connect JSON body", {
      request: { ...rawCall("connect-json", healthPath, "{}"), method: "PUT" },
    }),
  ),
  scenario("http", "h2", "DELETE with a gRPC body", {
    request: { ...rawCall("grpc", healthPath, envelope(Buffer.alloc(0))), method: "DELETE" },
  }),
];

const withContentType = (contentType: string | undefined, body: Uint8Array | string): RawRequest => ({
  method: "POST",
  path: getPath,
  headers: contentType === undefined ? {} : { "content-type": contentType },
  body: typeof body === "string" ? Buffer.from(body) : body,
});
const knownJson = JSON.stringify({ taskId: knownTaskId });

const contentTypes: Scenario[] = [
  ...(["h2", "h1"] as const).flatMap((t) => [
    scenario("http", t, "content-type text/plain: 415", {
      request: withContentType("text/plain", knownJson),
    }),
    scenario("http", t, "no content-type", { request: withContentType(undefined, knownJson) }),
  ]),
  scenario("http", "h1", "content-type application/xml", {
    request: withContentType("application/xml", "<taskId/>"),
  }),
  scenario("http", "h1", "content-type application/x-protobuf", {
    request: withContentType("application/x-protobuf", knownBinary),
  }),
  scenario("http", "h2", "content-type application/connect+json (streaming) for a unary method", {
    request: withContentType("application/connect+json", envelope(Buffer.from(knownJson))),
  }),
  scenario("connect-json", "h2", "content-type APPLICATION/JSON (upper case)", {
    request: rawCall("connect-json", getPath, knownJson, { "content-type": "APPLICATION/JSON" }),
  }),
  scenario("connect-json", "h1", "connect-protocol-version 2", {
    request: rawCall("connect-json", getPath, knownJson, { "connect-protocol-version": "2" }),
  }),
  scenario("connect-json", "h1", "content-type application/json; charset=iso-8859-1", {
    request: rawCall("connect-json", getPath, knownJson, {
      "content-type": "application/json; charset=iso-8859-1",
    }),
  }),
];

/** Two complete GetTaskStatus messages in one unary request body. */
const twoMessages = Buffer.concat([envelope(knownBinary), envelope(knownBinary)]);

const envelopes: Scenario[] = [
  ...(
    [
      ["grpc", "h2"],
      ["grpc", "h1"],
      ["grpc-web", "h1"],
    ] as const
  ).flatMap(([p, t]) => [
    scenario(p, t, "no envelope at all (empty body)", { request: rawCall(p, getPath, new Uint8Array(0)) }),
    scenario(p, t, "two messages for a unary method", { request: rawCall(p, getPath, twoMessages) }),
  ]),
  scenario("grpc", "h2", "truncated envelope header (3 bytes)", {
    request: rawCall("grpc", getPath, Buffer.from([0, 0, 0])),
  }),
  ...(["grpc", "grpc-web"] as const).flatMap((p) => [
    scenario(p, "h2", "envelope declares 100 bytes, 3 follow", {
      request: rawCall(p, getPath, envelope(Buffer.from([1, 2, 3]), 0, 100)),
    }),
    scenario(p, "h2", "two stray bytes after the message", {
      request: rawCall(p, getPath, Buffer.concat([envelope(knownBinary), Buffer.from([0, 0])])),
    }),
  ]),
  scenario("grpc-web", "h2", "request envelope with the trailer flag (0x80)", {
    request: rawCall("grpc-web", getPath, envelope(knownBinary, 0x80)),
  }),
  scenario("grpc", "h2", "request envelope with flag 0x80 (gRPC-Web's trailer flag)", {
    request: rawCall("grpc", getPath, envelope(knownBinary, 0x80)),
  }),
  scenario("grpc-web", "h1", "unknown envelope flags (0x02)", {
    request: rawCall("grpc-web", getPath, envelope(knownBinary, 0x02)),
  }),
  scenario("grpc", "h2", "content-length header smaller than the body", {
    request: rawCall("grpc", getPath, envelope(knownBinary), { "content-length": "3" }),
    followUp: unaryCall("grpc", api.healthCheck, {}),
    // nghttp2 checks DATA against content-length and resets the stream (PROTOCOL_ERROR).
    expect: "reset",
  }),
  scenario("connect-json", "h2", "content-length header larger than the body", {
    request: rawCall("connect-json", getPath, knownJson, { "content-length": "100" }),
    followUp: unaryCall("connect-json", api.healthCheck, {}),
    expect: "reset",
  }),
  scenario("grpc", "h1", "unknown envelope flags (0x02)", {
    request: rawCall("grpc", getPath, envelope(knownBinary, 0x02)),
  }),
];

const protobuf: Scenario[] = [
  scenario("grpc", "h2", "truncated protobuf in a complete envelope", {
    request: rawCall("grpc", getPath, envelope(Buffer.from([0x0a, 0x20, 0x61]))),
  }),
  scenario("connect-proto", "h1", "truncated protobuf", {
    request: rawCall("connect-proto", getPath, Buffer.from([0x0a, 0x20, 0x61])),
  }),
  scenario("connect-proto", "h2", "wrong wire type for a string field", {
    request: rawCall("connect-proto", getPath, Buffer.from([0x08, 0x01])),
  }),
  scenario("grpc-web", "h1", "invalid UTF-8 in a string field", {
    request: rawCall("grpc-web", getPath, envelope(Buffer.from([0x0a, 0x02, 0xff, 0xfe]))),
  }),
  scenario("connect-proto", "h2", "unknown field number 99 (kept as unknown, ignored)", {
    request: rawCall("connect-proto", getPath, Buffer.concat([knownBinary, Buffer.from([0x98, 0x06, 0x01])])),
  }),
];

const json: Scenario[] = [
  ...(["h2", "h1"] as const).map((t) =>
    scenario("connect-json", t, "malformed JSON", {
      request: rawCall("connect-json", getPath, '{"taskId": '),
    }),
  ),
  ...(["h2", "h1"] as const).map((t) =>
    scenario("connect-json", t, "unknown JSON field", {
      request: rawCall("connect-json", getPath, JSON.stringify({ taskId: knownTaskId, bogus: 1 })),
    }),
  ),
  scenario("connect-json", "h1", "a number for a string field", {
    request: rawCall("connect-json", getPath, '{"taskId": 5}'),
  }),
  scenario("connect-json", "h2", "empty body", { request: rawCall("connect-json", getPath, "") }),
  scenario("connect-json", "h1", "null", { request: rawCall("connect-json", getPath, "null") }),
  scenario("connect-json", "h2", "an array", { request: rawCall("connect-json", getPath, "[]") }),
  scenario("connect-json", "h1", "invalid UTF-8", {
    request: rawCall("connect-json", getPath, Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])),
  }),
  scenario("connect-json", "h2", "an unknown enum name", {
    request: rawCall(
      "connect-json",
      pathOf(api.submitTask),
      JSON.stringify({ type: "playbook", priority: "TASK_PRIORITY_NOPE" }),
    ),
  }),
  scenario("connect-json", "h1", "an enum as its number", {
    request: rawCall(
      "connect-json",
      pathOf(api.submitTask),
      JSON.stringify({ taskId: "diff-enum-number", type: "playbook", priority: 3 }),
    ),
  }),
];

/** Half of a SubmitTask that would create `taskId`, for clients that give up mid-body. */
function halfSubmit(protocol: "grpc" | "grpc-web" | "connect-json", taskId: string): RawRequest {
  const message = { taskId, type: "playbook", payload: { playbook: "abandoned.yml" } };
  const full = unaryCall(protocol, api.submitTask, message);
  const body = Buffer.from(full.body);
  const headers =
    protocol === "connect-json" ? { ...full.headers, "content-length": String(body.length) } : full.headers;
  return { ...full, headers, body: body.subarray(0, Math.floor(body.length / 2)) };
}

/** After a client gave up on creating `taskId`: the task must not exist. */
const stillMissing = (p: "grpc" | "grpc-web" | "connect-json", taskId: string) =>
  unaryCall(p, api.getTaskStatus, { taskId });

const cancellation: Scenario[] = [
  ...(["grpc", "grpc-web", "connect-json"] as const).map((p) =>
    scenario(p, "h2", "stream reset mid-body, then a call on the same session", {
      request: { ...halfSubmit(p, `diff-reset-${p}`), abort: "reset-stream" },
      followUp: stillMissing(p, `diff-reset-${p}`),
      expect: "abandoned",
    }),
  ),
  scenario("grpc", "h2", "stream reset after one byte, then a call on the same session", {
    request: { ...rawCall("grpc", getPath, Buffer.from([0])), abort: "reset-stream" },
    followUp: unaryCall("grpc", api.healthCheck, {}),
    expect: "abandoned",
  }),
  scenario("grpc", "h2", "connection closed mid-body, then a call on a new connection", {
    request: { ...halfSubmit("grpc", "diff-closed-grpc-h2"), abort: "close-connection" },
    followUp: stillMissing("grpc", "diff-closed-grpc-h2"),
    expect: "abandoned",
  }),
  ...(["grpc", "connect-json"] as const).map((p) =>
    scenario(p, "h1", "connection closed mid-body, then a call on a new connection", {
      request: { ...halfSubmit(p, `diff-closed-${p}-h1`), abort: "close-connection" },
      followUp: stillMissing(p, `diff-closed-${p}-h1`),
      expect: "abandoned",
    }),
  ),
];

/** Scenarios with wrong requests and abandoned calls (see the file comment). */
export const malformedScenarios: readonly Scenario[] = [
  ...unknownPaths,
  ...httpMethods,
  ...contentTypes,
  ...envelopes,
  ...protobuf,
  ...json,
  ...cancellation,
];
