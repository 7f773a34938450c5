/**
 * Server-streaming calls (WatchEvents) over native gRPC on HTTP/2, served straight from the
 * node:http2 stream like the unary fast path: the project's interceptors and the implementation
 * registered in routes.ts, then each message the implementation yields is written as one envelope.
 * Connect's handler keeps about a dozen generators, promises and the compat layer's request and
 * response objects alive for every open stream; here an idle watcher holds its context, its
 * subscription and one generator chain.
 *
 * The call runs in Connect's order: the interceptors run first and the request message is read
 * when the implementation takes it, so a refused call is refused whatever its body holds. Headers
 * go out with the first message, or with the trailers when none is sent.
 */
import type * as http2 from "node:http2";
import { create, type DescMessage, isMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
} from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { forEachHooked, hookableStream } from "../interceptors/stream-errors.js";
import {
  CallContext,
  type CallsInProgress,
  ignore,
  type NodeRequestHeaders,
  withInterceptors,
} from "./call-context.js";
import { adoptResponseHeader, adoptResponseTrailer, CallRequest, CallResponse } from "./call-objects.js";
import type { ServerStreamMethod } from "./unary-methods.js";
import { envelopeOf, grpcHeaders, grpcTrailers, unaryEnvelopeMessage, type WireFormat } from "./wire.js";

/** What a stream call is served with. */
export interface ServerStreamOptions {
  readonly interceptors: readonly Interceptor[];
  readonly readMaxBytes: number;
  readonly compressMinBytes: number;
  readonly served: () => void;
  readonly contextValues: (
    peerAddress: string,
    requestIdHeader: string | undefined,
  ) => import("@connectrpc/connect").ContextValues;
}

/** The decided handling of an admitted stream call. */
export interface StreamPlan {
  readonly entry: ServerStreamMethod;
  readonly format: WireFormat;
  readonly compression: Compression | null;
  readonly timeoutMs: number | undefined;
  readonly url: string;
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
      url: plan.url,
      nodeHeaders: headers,
      values: opt.contextValues(
        stream.session?.socket?.remoteAddress ?? "",
        headers["x-request-id"] as string | undefined,
      ),
      timeoutMs: plan.timeoutMs,
      shutdown: inProgress,
      clientGone: () => stream.destroyed,
    });
    let finished = false;
    // "close" fires once; `on` spares the wrapper `once` makes (an open stream would hold it).
    stream.on("close", () => {
      if (!finished) ctx.clientGone();
    });
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
    void respond(plan, stream, ctx, (chains.get(entry) as Chain)(req), opt.compressMinBytes).then(() => {
      finished = true;
    });
  };
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

/** Writes the response stream's messages as they come, then the trailers. Never throws. */
async function respond(
  plan: StreamPlan,
  stream: http2.ServerHttp2Stream,
  ctx: CallContext,
  response: Promise<StreamResponse>,
  compressMinBytes: number,
): Promise<void> {
  const { entry, format, compression } = plan;
  const serializer = entry.serialization.getO(true);
  const output = entry.method.output;
  let headersSent = false;
  const sendHeaders = (trailers: boolean) => {
    if (headersSent) return;
    headersSent = true;
    stream.respond(
      { ...grpcHeaders(format, compression, ctx.responseHeaderIfSet), ":status": 200 },
      { waitForTrailers: trailers },
    );
  };
  let error: ConnectError | undefined;
  try {
    const res = await response;
    ctx.settleRequestHeaders();
    adoptResponseHeader(res, ctx);
    await forEachHooked(res.message, async (m) => {
      const msg = isMessage(m, output) ? m : create(output as DescMessage, m as never);
      const bytes = serializer.serialize(msg as MessageShape<DescMessage>);
      const frame = await envelopeOf(bytes, compression, compressMinBytes);
      if (stream.destroyed || stream.closed) return false;
      sendHeaders(true);
      if (!stream.write(frame)) await drained(stream);
      return true;
    });
    adoptResponseTrailer(res, ctx);
  } catch (e) {
    error =
      e instanceof ConnectError
        ? e
        : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
    ctx.end(error);
  } finally {
    ctx.end();
  }
  if (stream.destroyed || stream.closed) return;
  const trailers = grpcTrailers(ctx.responseTrailerIfSet, error);
  sendHeaders(true);
  stream.on("wantTrailers", () => {
    if (!stream.destroyed) stream.sendTrailers(trailers);
  });
  stream.end();
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
