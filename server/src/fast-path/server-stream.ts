/**
 * Server-streaming calls (WatchEvents) over native gRPC on HTTP/2, served straight from the
 * node:http2 stream like the unary fast path: the project's interceptors and the implementation
 * registered in routes.ts, then each message the implementation yields is written as one envelope.
 * Connect's handler keeps about a dozen generators, promises and the compat layer's request and
 * response objects alive for every open stream. Here a stream that can push (a watch) is handed the
 * writer and pushes into it, so an idle watcher holds its context, the writer and the watch's state,
 * and no suspended frame; any other stream is read with `for await`.
 *
 * The call runs in Connect's order: the interceptors run first and the request message is read
 * when the implementation takes it, so a refused call is refused whatever its body holds. Headers
 * go out with the first message, or with the trailers when none is sent.
 */
import type * as http2 from "node:http2";
import type * as net from "node:net";
import { create, type DescMessage, isMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
} from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { forEachHooked, hookableStream, pushHooked } from "../interceptors/stream-errors.js";
import type { PushSink } from "../push-stream.js";
import {
  CallContext,
  type CallsInProgress,
  ignore,
  type NodeRequestHeaders,
  type RequestTarget,
  withInterceptors,
} from "./call-context.js";
import {
  adoptResponseHeader,
  adoptResponseTrailer,
  CallRequest,
  CallResponse,
  isOwnResponse,
} from "./call-objects.js";
import type { ServerStreamMethod } from "./unary-methods.js";
import { envelopeOf, grpcHeaders, grpcTrailers, unaryEnvelopeMessage, type WireFormat } from "./wire.js";

/** What a stream call is served with. */
export interface ServerStreamOptions {
  readonly interceptors: readonly Interceptor[];
  readonly readMaxBytes: number;
  readonly compressMinBytes: number;
  readonly served: () => void;
  readonly contextValues: (
    socket: net.Socket | undefined,
    headers: NodeRequestHeaders,
  ) => import("@connectrpc/connect").ContextValues;
}

/** The decided handling of an admitted stream call. */
export interface StreamPlan extends RequestTarget {
  readonly entry: ServerStreamMethod;
  readonly format: WireFormat;
  readonly compression: Compression | null;
  readonly timeoutMs: number | undefined;
}

/** Reads a whole request body: the bytes, or Connect's error once it is over the limit. */
export type ReadBody = (
  source: http2.ServerHttp2Stream,
  plan: StreamPlan,
  done: (body: Uint8Array | ConnectError) => void,
) => void;

/** A stream request as the interceptors see it, and its call's context. */
type FastStreamRequest = StreamRequest & { readonly context: CallContext };
type Chain = (req: FastStreamRequest) => Promise<StreamResponse>;

/** Creates the server for admitted stream calls. */
export function createServerStreams(
  methods: Iterable<ServerStreamMethod>,
  opt: ServerStreamOptions,
  inProgress: CallsInProgress,
  readBody: ReadBody,
): (plan: StreamPlan, stream: http2.ServerHttp2Stream, headers: NodeRequestHeaders) => void {
  const chains = new Map<ServerStreamMethod, Chain>();
  for (const entry of methods) {
    // Connect's order: the request message is read when the implementation takes it.
    const call = async (req: FastStreamRequest): Promise<StreamResponse> => {
      const ctx = req.context;
      const input = await single(req.message);
      // Hookable, so the interceptors add their hooks to it instead of copying the response.
      const message = hookableStream(entry.impl(input, ctx));
      return new CallResponse(true, entry.service, entry.method, message, ctx) as StreamResponse;
    };
    chains.set(entry, withInterceptors(opt.interceptors, call) as Chain);
  }

  return (plan, stream, headers) => {
    opt.served();
    stream.on("error", ignore);
    const { entry } = plan;
    const ctx = new CallContext({
      service: entry.service,
      method: entry.method,
      protocolName: "grpc",
      target: plan,
      nodeHeaders: headers,
      values: opt.contextValues(stream.session?.socket, headers),
      timeoutMs: plan.timeoutMs,
      shutdown: inProgress,
      clientGone: stream,
    });
    // "close" fires once; `on` spares the wrapper `once` makes (an open stream would hold it).
    // One listener for every stream, finding the call on the stream: none of its own to hold.
    (stream as StreamWithCall)[kCall] = ctx;
    stream.on("close", onStreamClose);
    // The body is read while the interceptors run; the implementation waits for it.
    const body = new Promise<Uint8Array | ConnectError>((resolve) => readBody(stream, plan, resolve));
    const message = requestMessage(body, entry, opt.readMaxBytes);
    const req = new CallRequest(
      true,
      entry.service,
      entry.method,
      message,
      ctx,
    ) as unknown as FastStreamRequest;
    void respond(plan, stream, ctx, (chains.get(entry) as Chain)(req), opt.compressMinBytes);
  };
}

/** The context of the call a stream serves, kept on the stream for onStreamClose. */
const kCall = Symbol("call context");
type StreamWithCall = http2.ServerHttp2Stream & { [kCall]?: CallContext };

/** The client went away (or the call ended; then the context ignores it). */
function onStreamClose(this: StreamWithCall): void {
  this[kCall]?.clientGone();
}

/** The request message of a server-streaming call, once its body is read. */
async function* requestMessage(
  body: Promise<Uint8Array | ConnectError>,
  entry: ServerStreamMethod,
  readMaxBytes: number,
): AsyncGenerator<MessageShape<DescMessage>> {
  const b = await body;
  if (b instanceof ConnectError) throw b;
  const parser = entry.serialization.getI(true);
  yield unaryEnvelopeMessage(b, readMaxBytes, false, (m) => parser.parse(m), "server-streaming");
}

/** The one message of a server-streaming request (the body holds exactly one). */
async function single<T>(messages: AsyncIterable<T>): Promise<T> {
  for await (const m of messages) return m;
  throw new ConnectError(
    "protocol error: missing input message for server-streaming method",
    Code.Unimplemented,
  );
}

/**
 * Writes the response stream's messages as they come, then the trailers. Never throws. A stream that
 * can push (push-stream.ts) is handed the writer and the call returns: an idle watcher then holds the
 * writer and its source's state, not this function's frame.
 */
async function respond(
  plan: StreamPlan,
  stream: http2.ServerHttp2Stream,
  ctx: CallContext,
  response: Promise<StreamResponse>,
  compressMinBytes: number,
): Promise<void> {
  const writer = new StreamWriter(plan, stream, ctx, compressMinBytes);
  try {
    const res = await response;
    ctx.settleRequestHeaders();
    adoptResponseHeader(res, ctx);
    // The call's own response has no trailers of its own to adopt: an open stream need not hold it.
    writer.response = isOwnResponse(res, ctx) ? undefined : res;
    if (pushHooked(res.message, writer)) return;
    await forEachHooked(res.message, (m) => {
      const r = writer.push(m);
      return r === undefined || r === false ? r !== false : r.then(() => true);
    });
  } catch (e) {
    writer.end(e);
    return;
  }
  writer.end(undefined);
}

/**
 * One stream call's answer: the headers with the first message (or with the trailers when none is
 * sent), each message as an envelope, then the trailers with the call's outcome.
 */
class StreamWriter implements PushSink<unknown> {
  /**
   * The response the interceptors returned, when it is not the call's own: its trailers are
   * adopted at the end.
   */
  response: StreamResponse | undefined;
  private headersSent = false;
  private compressFailure: { readonly error: unknown } | undefined;

  constructor(
    private readonly plan: StreamPlan,
    private readonly stream: http2.ServerHttp2Stream,
    private readonly ctx: CallContext,
    private readonly compressMinBytes: number,
  ) {}

  push(m: unknown): Promise<void> | undefined | false {
    if (this.compressFailure) throw this.compressFailure.error;
    const { entry, compression } = this.plan;
    const output = entry.method.output;
    const msg = isMessage(m, output) ? m : create(output as DescMessage, m as never);
    const bytes = entry.serialization.getO(true).serialize(msg as MessageShape<DescMessage>);
    const frame = envelopeOf(bytes, compression, this.compressMinBytes);
    if (frame instanceof Uint8Array) return this.write(frame);
    // Never rejects: a failed compression fails the next message (or the end) instead.
    return frame.then(
      (f) => {
        const r = this.write(f);
        return r === false ? undefined : r;
      },
      (error: unknown) => {
        this.compressFailure = { error };
      },
    );
  }

  private write(frame: Uint8Array): Promise<void> | undefined | false {
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return false;
    this.sendHeaders();
    return stream.write(frame) ? undefined : drained(stream);
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    const { format, compression } = this.plan;
    this.stream.respond(
      { ...grpcHeaders(format, compression, this.ctx.responseHeaderIfSet), ":status": 200 },
      { waitForTrailers: true },
    );
  }

  end(e: unknown): void {
    const { ctx, stream } = this;
    const failure = e ?? this.compressFailure?.error;
    let error: ConnectError | undefined;
    if (failure !== undefined) {
      error =
        failure instanceof ConnectError
          ? failure
          : new ConnectError("internal error", Code.Internal, undefined, undefined, failure);
      ctx.end(error);
    } else if (this.response) {
      adoptResponseTrailer(this.response, ctx);
    }
    ctx.end();
    if (stream.destroyed || stream.closed) return;
    const trailers = grpcTrailers(ctx.responseTrailerIfSet, error);
    this.sendHeaders();
    stream.on("wantTrailers", () => {
      if (!stream.destroyed) stream.sendTrailers(trailers);
    });
    stream.end();
  }
}

function drained(stream: http2.ServerHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}
