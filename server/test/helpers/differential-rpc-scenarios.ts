/**
 * Differential scenarios about what RPCs answer: successful calls of SpageAPI and SpageExecution
 * unary methods and the domain errors (NotFound, InvalidArgument with BadRequest, AlreadyExists,
 * FailedPrecondition) in every protocol and codec over both transports, compression of answers
 * (large listings over compressMinBytes, small answers under it), the JSON codec's variants, and
 * authentication, authorisation and rate limiting (the "auth" pair).
 */
import { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import { SpageExecution } from "../../../gen/spage/core/execution_pb.js";
import type { Transport } from "./differential-client.js";
import { endedTaskId, knownTaskId, knownTaskRequest, listPrefix, listSize } from "./differential-fixtures.js";
import {
  envelope,
  type Protocol,
  pathOf,
  protocolHeaders,
  type Scenario,
  scenario,
  unaryCall,
} from "./differential-scenario.js";

type RpcProtocol = Exclude<Protocol, "http" | "connect-get">;

const api = SpageAPI.method;
const execution = SpageExecution.method;

/** Every protocol and codec a unary call may use, over both transports. */
const everyProtocol: readonly (readonly [RpcProtocol, Transport])[] = (
  ["grpc", "grpc-web", "connect-proto", "connect-json"] as const
).flatMap((p) => (["h2", "h1"] as const).map((t) => [p, t] as const));

/** The same calls in every protocol over both transports: the core of the corpus. */
const matrix: Scenario[] = everyProtocol.flatMap(([p, t]) => [
  scenario(p, t, "SpageAPI.HealthCheck", { request: unaryCall(p, api.healthCheck, {}) }),
  scenario(p, t, "GetTaskStatus of a stored task", {
    request: unaryCall(p, api.getTaskStatus, { taskId: knownTaskId }),
  }),
  scenario(p, t, "SubmitTask with a fixed id", {
    request: unaryCall(p, api.submitTask, {
      taskId: `diff-submit-${p}-${t}`,
      type: "playbook",
      priority: "TASK_PRIORITY_LOW",
      payload: { playbook: "deploy.yml" },
      timeoutSeconds: 600,
    }),
  }),
  scenario(p, t, "GetTaskStatus of an unknown task: NotFound", {
    request: unaryCall(p, api.getTaskStatus, { taskId: "diff-missing" }),
  }),
  scenario(p, t, "SubmitTask without type: InvalidArgument with BadRequest", {
    request: unaryCall(p, api.submitTask, { payload: { playbook: "x.yml" }, timeoutSeconds: -1 }),
  }),
  scenario(p, t, "CancelTask of an ended task: FailedPrecondition", {
    request: unaryCall(p, api.cancelTask, { taskId: endedTaskId, reason: "again" }),
  }),
]);

/** A listing of the fixture batch: ~6 KiB, over compressMinBytes (1 KiB). */
const listing = { idPrefix: listPrefix, order: "LIST_ORDER_OLDEST_FIRST", limit: listSize + 10 };

/**
 * GetMetrics goes first: its RPC counters must match, so it runs before any scenario whose effect on
 * the server (e.g. how a cancelled call is counted) the client cannot observe.
 */
const metrics: Scenario[] = [
  scenario("connect-json", "h1", "SpageAPI.GetMetrics", {
    request: unaryCall("connect-json", api.getMetrics, {}),
  }),
  scenario("grpc", "h2", "SpageExecution.GetMetrics", {
    request: unaryCall("grpc", execution.getMetrics, {}),
  }),
];

const more: Scenario[] = [
  scenario("grpc", "h2", "SpageExecution.HealthCheck", {
    request: unaryCall("grpc", execution.healthCheck, {}),
  }),
  scenario("grpc", "h2", "SpageExecution.GetTaskStatus", {
    request: unaryCall("grpc", execution.getTaskStatus, { taskId: knownTaskId }),
  }),
  scenario("connect-json", "h1", "SpageExecution.GetTaskStatus of an unknown task", {
    request: unaryCall("connect-json", execution.getTaskStatus, { taskId: "diff-missing" }),
  }),
  scenario("grpc", "h2", "SpageExecution.ExecuteTask with a fixed id", {
    request: unaryCall("grpc", execution.executeTask, {
      taskId: "diff-execute-1",
      playbook: "site.yml",
      variables: { env: "test" },
      priority: "TASK_PRIORITY_CRITICAL",
    }),
  }),
  scenario("connect-proto", "h1", "SpageExecution.RegisterTask of a new run", {
    request: unaryCall("connect-proto", execution.registerTask, {
      taskId: "diff-register-1",
      playbook: "site.yml",
      engine: "local",
    }),
  }),
  scenario("grpc", "h2", "SubmitTask with a used id and other contents: AlreadyExists", {
    request: unaryCall("grpc", api.submitTask, { taskId: knownTaskId, type: "other" }),
  }),
  scenario("connect-json", "h1", "SubmitTask with a used id and other contents: AlreadyExists", {
    request: unaryCall("connect-json", api.submitTask, { taskId: knownTaskId, type: "other" }),
  }),
  scenario("connect-proto", "h2", "SubmitTask repeated exactly: the same task", {
    request: unaryCall("connect-proto", api.submitTask, knownTaskRequest),
  }),
  scenario("grpc", "h2", "SubmitTask without id: a generated UUID", {
    request: unaryCall("grpc", api.submitTask, { type: "playbook" }),
  }),
  scenario("connect-json", "h1", "SubmitTask without id: a generated UUID", {
    request: unaryCall("connect-json", api.submitTask, { type: "playbook" }),
  }),
  ...(["grpc", "connect-json"] as const).map((p) =>
    scenario(p, "h2", "CancelTask of a pending task", {
      setup: (gw) => gw.callJson(pathOf(api.submitTask), { taskId: `diff-cancel-${p}`, type: "playbook" }),
      request: unaryCall(p, api.cancelTask, { taskId: `diff-cancel-${p}`, reason: "differential" }),
    }),
  ),
  scenario("grpc", "h2", "ListTasks over compressMinBytes, grpc-accept-encoding gzip", {
    request: unaryCall("grpc", api.listTasks, listing, { "grpc-accept-encoding": "gzip" }),
  }),
  scenario("grpc", "h1", "ListTasks over compressMinBytes, grpc-accept-encoding br", {
    request: unaryCall("grpc", api.listTasks, listing, { "grpc-accept-encoding": "br" }),
  }),
  scenario("grpc", "h2", "ListTasks over compressMinBytes, no grpc-accept-encoding", {
    request: unaryCall("grpc", api.listTasks, listing),
  }),
  scenario("grpc-web", "h1", "ListTasks over compressMinBytes, grpc-accept-encoding gzip", {
    request: unaryCall("grpc-web", api.listTasks, listing, { "grpc-accept-encoding": "gzip" }),
  }),
  scenario("grpc-web", "h2", "ListTasks over compressMinBytes, grpc-accept-encoding br, gzip", {
    request: unaryCall("grpc-web", api.listTasks, listing, { "grpc-accept-encoding": "br, gzip" }),
  }),
  scenario("connect-proto", "h1", "ListTasks over compressMinBytes, accept-encoding gzip", {
    request: unaryCall("connect-proto", api.listTasks, listing, { "accept-encoding": "gzip" }),
  }),
  scenario("connect-json", "h2", "ListTasks over compressMinBytes, accept-encoding br", {
    request: unaryCall("connect-json", api.listTasks, listing, { "accept-encoding": "br" }),
  }),
  scenario("connect-json", "h1", "ListTasks over compressMinBytes, accept-encoding gzip;q=0.5, br", {
    request: unaryCall("connect-json", api.listTasks, listing, { "accept-encoding": "gzip;q=0.5, br" }),
  }),
  scenario("connect-json", "h1", "ListTasks over compressMinBytes, no accept-encoding", {
    request: unaryCall("connect-json", api.listTasks, listing),
  }),
  scenario("connect-json", "h2", "ListTasks with limit and offset (a next page token)", {
    request: unaryCall("connect-json", api.listTasks, {
      idPrefix: listPrefix,
      limit: 5,
      offset: 5,
    }),
  }),
  scenario("connect-json", "h2", "GetTaskStatus under compressMinBytes, accept-encoding gzip", {
    request: unaryCall(
      "connect-json",
      api.getTaskStatus,
      { taskId: knownTaskId },
      { "accept-encoding": "gzip" },
    ),
  }),
  scenario("grpc", "h2", "HealthCheck under compressMinBytes, grpc-accept-encoding gzip", {
    request: unaryCall("grpc", api.healthCheck, {}, { "grpc-accept-encoding": "gzip" }),
  }),
  ...(["h2", "h1"] as const).map((t) =>
    scenario("connect-json", t, "content-type application/json; charset=utf-8", {
      request: unaryCall(
        "connect-json",
        api.getTaskStatus,
        { taskId: knownTaskId },
        { "content-type": "application/json; charset=utf-8" },
      ),
    }),
  ),
  scenario("connect-json", "h2", "without connect-protocol-version", {
    request: {
      ...unaryCall("connect-json", api.getTaskStatus, { taskId: knownTaskId }),
      headers: { "content-type": "application/json" },
    },
  }),
  scenario("grpc", "h2", "content-type application/grpc+proto", {
    request: unaryCall(
      "grpc",
      api.getTaskStatus,
      { taskId: knownTaskId },
      { "content-type": "application/grpc+proto" },
    ),
  }),
  scenario("grpc", "h2", "without te: trailers", {
    request: { ...unaryCall("grpc", api.healthCheck, {}), headers: { "content-type": "application/grpc" } },
  }),
  ...(["h2", "h1"] as const).map((t) =>
    scenario(
      "connect-json",
      t,
      "SubmitTask with an unknown priority name: InvalidArgument naming the field",
      {
        request: unaryCall("connect-json", api.submitTask, { type: "playbook", priority: "NOPE" }),
      },
    ),
  ),
  scenario("connect-json", "h1", "SubmitTask with an unknown field name: ignored", {
    request: unaryCall("connect-json", api.submitTask, {
      taskId: "diff-unknown-field",
      type: "playbook",
      fieldOfANewerContract: 1,
    }),
  }),
  scenario("grpc", "h2", "gRPC with the JSON codec and an unknown enum value: InvalidArgument", {
    request: {
      method: "POST",
      path: pathOf(api.listTasks),
      headers: { ...protocolHeaders.grpc, "content-type": "application/grpc+json" },
      body: envelope(Buffer.from(JSON.stringify({ order: "SIDEWAYS" }))),
    },
  }),
  scenario("grpc", "h2", "gRPC with the JSON codec (application/grpc+json)", {
    request: {
      method: "POST",
      path: pathOf(api.getTaskStatus),
      headers: { ...protocolHeaders.grpc, "content-type": "application/grpc+json" },
      body: envelope(Buffer.from(JSON.stringify({ taskId: knownTaskId }))),
    },
  }),
  scenario("grpc-web", "h1", "gRPC-Web with the JSON codec (application/grpc-web+json)", {
    request: {
      method: "POST",
      path: pathOf(api.getTaskStatus),
      headers: { ...protocolHeaders["grpc-web"], "content-type": "application/grpc-web+json" },
      body: envelope(Buffer.from(JSON.stringify({ taskId: knownTaskId }))),
    },
  }),
  scenario("grpc-web-text", "h1", "GetTaskStatus of a stored task", {
    request: unaryCall("grpc-web-text", api.getTaskStatus, { taskId: knownTaskId }),
  }),
  scenario("grpc-web-text", "h2", "GetTaskStatus of an unknown task: NotFound", {
    request: unaryCall("grpc-web-text", api.getTaskStatus, { taskId: "diff-missing" }),
  }),
];

const readonlyCall = (p: RpcProtocol) => unaryCall(p, api.getTaskStatus, { taskId: knownTaskId });

/** Credentials, scopes and rate limits: the "auth" pair (tasks:cancel limited to 1/s, burst 1). */
const auth: Scenario[] = [
  ...(
    [
      ["grpc", "h2"],
      ["connect-json", "h1"],
      ["grpc-web", "h1"],
      ["connect-proto", "h2"],
    ] as const
  ).map(([p, t]) =>
    scenario(p, t, "no credentials: Unauthenticated", { pair: "auth", request: readonlyCall(p) }),
  ),
  scenario("connect-json", "h2", "Basic credentials: Unauthenticated", {
    pair: "auth",
    credential: "malformed",
    request: readonlyCall("connect-json"),
  }),
  scenario("grpc", "h1", "a key the gateway never issued: Unauthenticated", {
    pair: "auth",
    credential: "unknown-key",
    request: readonlyCall("grpc"),
  }),
  ...(
    [
      ["grpc", "h2"],
      ["connect-json", "h1"],
      ["grpc-web", "h2"],
    ] as const
  ).map(([p, t]) =>
    scenario(p, t, "SubmitTask with a tasks:read key: PermissionDenied", {
      pair: "auth",
      credential: "read-only",
      request: unaryCall(p, api.submitTask, { taskId: "diff-denied", type: "playbook" }),
    }),
  ),
  ...(
    [
      ["grpc", "h2"],
      ["connect-json", "h1"],
    ] as const
  ).map(([p, t]) =>
    scenario(p, t, "GetTaskStatus with the admin key", {
      pair: "auth",
      credential: "admin",
      request: readonlyCall(p),
    }),
  ),
  scenario("connect-proto", "h1", "HealthCheck without credentials (public)", {
    pair: "auth",
    request: unaryCall("connect-proto", api.healthCheck, {}),
  }),
  scenario("grpc", "h2", "SpageExecution.GetTaskStatus anonymously from loopback", {
    pair: "auth",
    request: unaryCall("grpc", execution.getTaskStatus, { taskId: knownTaskId }),
  }),
  ...(
    [
      ["grpc", "h2"],
      ["grpc-web", "h1"],
      ["connect-proto", "h2"],
      ["connect-json", "h1"],
    ] as const
  ).map(([p, t]) =>
    scenario(p, t, "CancelTask over the rate limit: ResourceExhausted with Retry-After", {
      pair: "auth",
      credential: "admin",
      // Takes the bucket's only token right before the call (the bucket refills in 1 s, far longer
      // than the two calls take), so the call itself is over the limit.
      setup: (gw) => gw.takeLastToken(pathOf(api.cancelTask), { taskId: "diff-rate" }),
      request: unaryCall(p, api.cancelTask, { taskId: "diff-rate" }),
    }),
  ),
];

/** Scenarios about what RPCs answer (see the file comment). */
export const rpcScenarios: readonly Scenario[] = [...metrics, ...matrix, ...more, ...auth];
