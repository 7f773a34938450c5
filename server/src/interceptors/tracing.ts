/**
 * One OpenTelemetry span per RPC, on Connect's handler and on the fast path alike (both run this
 * interceptor): kind SERVER, named `<package.Service>/<Method>`, its parent taken from the
 * request's `traceparent` / `tracestate`, with the OpenTelemetry RPC attributes, the wire protocol
 * (`spage.protocol`) and the task a request or answer names (`spage.task_id`). A stream's span
 * lasts until the stream ends. The call runs with the span current, so the store transactions it
 * causes are its children and a task it submits records it as the task's parent.
 *
 * Loaded only when tracing is on (app.ts imports it dynamically).
 */
import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import {
  type Attributes,
  type Context,
  context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";
import type { GatewayTracing } from "../tracing/tracer-setup.js";
import { rpcNameOf } from "./rpc-name.js";
import { hookStream } from "./stream-errors.js";

/** Reads propagation headers from a request's `Headers`. */
const headerGetter: TextMapGetter<Headers> = {
  get: (h, key) => h.get(key) ?? undefined,
  keys: (h) => [...h.keys()],
};

/** The gateway's name for a request's wire protocol: grpc, grpc-web, connect+json or connect+proto. */
export function protocolOf(contentType: string | null, requestMethod: string, url: string): string {
  const ct = (contentType ?? "").toLowerCase();
  if (ct.startsWith("application/grpc-web")) return "grpc-web";
  if (ct.startsWith("application/grpc")) return "grpc";
  // Connect GET carries its codec in the query (encoding=json|proto), not in a content type.
  if (requestMethod === "GET") return /[?&]encoding=json(&|$)/.test(url) ? "connect+json" : "connect+proto";
  return ct.includes("json") ? "connect+json" : "connect+proto";
}

/** The task id a message names (`task_id` in most requests and in SubmitTask's answer), if any. */
function taskIdOf(message: unknown): string | undefined {
  if (typeof message !== "object" || message === null) return undefined;
  const id = (message as { taskId?: unknown }).taskId;
  return typeof id === "string" && id !== "" ? id : undefined;
}

/** Sets the span's outcome attributes and status, then ends it. */
function endSpan(span: Span, grpcLike: boolean, err: unknown, aborted: boolean): void {
  if (err === undefined && !aborted) {
    if (grpcLike) span.setAttribute("rpc.grpc.status_code", 0);
    span.setAttribute("spage.code", "ok");
    span.end();
    return;
  }
  const ce = aborted
    ? new ConnectError("the client canceled the call", Code.Canceled)
    : ConnectError.from(err);
  const code = codeToString(ce.code);
  span.setAttribute(
    grpcLike ? "rpc.grpc.status_code" : "rpc.connect_rpc.error_code",
    grpcLike ? ce.code : code,
  );
  span.setAttribute("spage.code", code);
  // Every error code is an error here: a span's reader wants to find refused calls too.
  span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
  span.end();
}

/** Creates the tracing interceptor; place it first (outermost) so its span covers the whole call. */
export function createTracingInterceptor(tracing: GatewayTracing): Interceptor {
  const { tracer, propagator } = tracing;
  return (next) => async (req) => {
    const protocol = protocolOf(req.header.get("content-type"), req.requestMethod, req.url);
    const grpcLike = protocol === "grpc" || protocol === "grpc-web";
    const attributes: Attributes = {
      "rpc.system": grpcLike ? "grpc" : "connect_rpc",
      "rpc.service": req.service.typeName,
      "rpc.method": req.method.name,
      "spage.protocol": protocol,
    };
    const requestTask = req.stream ? undefined : taskIdOf(req.message);
    if (requestTask) attributes["spage.task_id"] = requestTask;
    const parent = propagator.extract(ROOT_CONTEXT, req.header, headerGetter);
    const span = tracer.startSpan(rpcNameOf(req.method), { kind: SpanKind.SERVER, attributes }, parent);
    const active = trace.setSpan(parent, span);
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await context.with(active, () => next(req));
    } catch (err) {
      endSpan(span, grpcLike, err, false);
      throw err;
    }
    if (!res.stream) {
      if (!requestTask) {
        const answered = taskIdOf(res.message);
        if (answered) span.setAttribute("spage.task_id", answered);
      }
      endSpan(span, grpcLike, undefined, false);
      return res;
    }
    const hooked = hookStream(res as StreamResponse, {
      onEnd: (err, aborted) => endSpan(span, grpcLike, err, aborted),
    });
    return withMessage(hooked, inContext(active, hooked.message));
  };
}

/**
 * `source` iterated with `ctx` current. A stream handler's body runs when its response is read,
 * and the server reads it after the interceptors have returned, outside the call's context: bound
 * here, the writes the handler makes while it streams (a daemon's reports) are children of the
 * stream's span. It costs a wrapper per stream, so only a tracing gateway has it.
 */
function inContext<T>(ctx: Context, source: AsyncIterable<T>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = context.with(ctx, () => source[Symbol.asyncIterator]());
      const done: IteratorReturnResult<T> = { done: true, value: undefined as T };
      return {
        next: () => context.with(ctx, () => it.next()),
        return: (value?: unknown) => {
          const end = it.return;
          return end ? context.with(ctx, () => end.call(it, value)) : Promise.resolve(done);
        },
        throw: (err?: unknown) => {
          const fail = it.throw;
          return fail ? context.with(ctx, () => fail.call(it, err)) : Promise.reject(err);
        },
      };
    },
  };
}

/**
 * `res` with another message stream. Made from the same prototype, not spread into a literal: the
 * fast path's responses are class instances whose headers and trailers are prototype getters
 * (fast-path/call-objects.ts), which a spread would drop.
 */
function withMessage(res: StreamResponse, message: AsyncIterable<unknown>): StreamResponse {
  const copy = Object.create(Object.getPrototypeOf(res) as object) as StreamResponse;
  return Object.assign(copy, res, { message });
}
