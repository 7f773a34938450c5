/**
 * The unary fast path. It admits a request on its headers alone (POST, a unary method registered
 * in routes.ts, a content type it speaks, no request compression, a valid timeout header, no CORS
 * to answer) and serves it straight from the node:http2 stream or node:http request: read the body,
 * decode, run the project's interceptors and the same implementation Connect would call, encode,
 * write, with one await for the call. Server-streaming calls over native gRPC on HTTP/2 are served
 * the same way (server-stream.ts). Everything else (other streams and stream framings, Connect GET,
 * anything unusual or malformed at the header level) returns false and goes to Connect's handler
 * unchanged.
 */
import type * as http from "node:http";
import type * as http2 from "node:http2";
import type * as net from "node:net";
import { create, type DescMessage, isMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { type Compression, compressionNegotiate } from "@connectrpc/connect/protocol";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import {
  CallContext,
  CallsInProgress,
  ignore,
  type NodeRequestHeaders,
  type RequestTarget,
  withInterceptors,
} from "./call-context.js";
import { adoptResponseHeader, adoptResponseTrailer, CallRequest, CallResponse } from "./call-objects.js";
import { writeHttp1Answer } from "./http1-answers.js";
import { createServerStreams, type StreamPlan } from "./server-stream.js";
import type { ServerStreamMethod, UnaryMethod } from "./unary-methods.js";
import {
  assertEnvelopeSize,
  declaredEnvelopeLength,
  encodeAnswer,
  unaryEnvelopeMessage,
  type WireAnswer,
  type WireFormat,
  wireFormatOf,
} from "./wire.js";

/** What the fast path is built from. */
export interface FastPathOptions {
  readonly unary: ReadonlyMap<string, UnaryMethod>;
  /** Server-streaming methods, served over native gRPC on HTTP/2 (server-stream.ts). */
  readonly serverStreaming: ReadonlyMap<string, ServerStreamMethod>;
  /** The same interceptors Connect's handler runs, outermost first. */
  readonly interceptors: readonly Interceptor[];
  readonly readMaxBytes: number;
  readonly compressMinBytes: number;
  readonly maxTimeoutMs: number;
  readonly acceptCompression: readonly Compression[];
  readonly shutdownSignal: AbortSignal;
  /** When CORS is configured, requests with an Origin header go to Connect's handler (and CORS). */
  readonly corsEnabled: boolean;
  /** Told once per call (unary or stream) the fast path serves (`fast_path_calls_total`). */
  readonly served: () => void;
  /**
   * The context values of a call (logger, client address, client certificate, request id), as
   * Connect's handler gets them, from the connection's socket and the request headers.
   */
  readonly contextValues: (socket: net.Socket | undefined, headers: NodeRequestHeaders) => ContextValues;
}

/** Serves admitted requests; each method returns false for a request it leaves to Connect. */
export interface FastPath {
  http2(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean;
  http1(req: http.IncomingMessage, res: http.ServerResponse): boolean;
}

/** The decided handling of an admitted request. */
interface Plan extends RequestTarget {
  readonly entry: UnaryMethod;
  readonly format: WireFormat;
  readonly compression: Compression | null;
  readonly timeoutMs: number | undefined;
}

/** A unary request as the interceptors see it, and its call's context. */
type FastRequest = UnaryRequest & { readonly context: CallContext };

/** Creates the fast path. */
export function createFastPath(opt: FastPathOptions): FastPath {
  const available = [...opt.acceptCompression];
  const inProgress = new CallsInProgress(opt.shutdownSignal);
  // One composed chain per method: the interceptors wrap a call of the method's implementation.
  const chains = new Map<UnaryMethod, (req: FastRequest) => Promise<UnaryResponse>>();
  for (const entry of opt.unary.values()) {
    const output = entry.method.output;
    const call = async (req: FastRequest): Promise<UnaryResponse> => {
      const ctx = req.context;
      const out = await entry.impl(req.message, ctx);
      const message = isMessage(out, output) ? out : create(output, out as never);
      return new CallResponse(false, entry.service, entry.method, message, ctx) as UnaryResponse;
    };
    chains.set(entry, withInterceptors(opt.interceptors, call));
  }

  /** The handling of a request for `entry`, or undefined to leave it to Connect. */
  const admitFor = <E>(
    entry: E,
    path: string,
    headers: NodeRequestHeaders,
    authority: string,
    scheme: string,
  ): (Omit<Plan, "entry"> & { entry: E }) | undefined => {
    const format = wireFormatOf(headers["content-type"] as string | undefined);
    if (!format) return undefined;
    if (opt.corsEnabled && headers.origin !== undefined) return undefined;
    const grpcLike = format.protocol !== "connect";
    const encoding = headers[grpcLike ? "grpc-encoding" : "content-encoding"];
    if (encoding !== undefined && encoding !== "identity") return undefined;
    const accept = headers[grpcLike ? "grpc-accept-encoding" : "accept-encoding"];
    if (accept !== undefined && typeof accept !== "string") return undefined;
    const timeoutHeader = headers[grpcLike ? "grpc-timeout" : "connect-timeout-ms"];
    let timeoutMs: number | undefined;
    if (timeoutHeader !== undefined) {
      if (typeof timeoutHeader !== "string") return undefined;
      const t = (grpcLike ? parseGrpcTimeout : parseConnectTimeout)(timeoutHeader, opt.maxTimeoutMs);
      if (t.error) return undefined;
      timeoutMs = t.timeoutMs;
    }
    const compression = compressionNegotiate(
      available,
      null,
      accept ?? null,
      grpcLike ? "grpc-accept-encoding" : "accept-encoding",
    ).response;
    return { entry, format, compression, timeoutMs, scheme, authority, path };
  };

  const admit = (
    method: string | undefined,
    path: string | undefined,
    headers: NodeRequestHeaders,
    authority: string,
    scheme: string,
  ): Plan | undefined => {
    if (method !== "POST" || path === undefined) return undefined;
    const entry = opt.unary.get(path);
    return entry ? admitFor(entry, path, headers, authority, scheme) : undefined;
  };

  /** A server-streaming call over native gRPC (binary), or undefined. */
  const admitStream = (
    path: string | undefined,
    headers: http2.IncomingHttpHeaders,
  ): StreamPlan | undefined => {
    if (headers[":method"] !== "POST" || path === undefined) return undefined;
    const entry = opt.serverStreaming.get(path);
    if (!entry) return undefined;
    const plan = admitFor(entry, path, headers, headers[":authority"] ?? "", headers[":scheme"] ?? "http");
    return plan?.format.protocol === "grpc" ? plan : undefined;
  };
  const serveStream = createServerStreams(
    opt.serverStreaming.values(),
    opt,
    inProgress,
    (source, plan, done) => readBody(source, plan, opt.readMaxBytes, undefined, done),
  );

  /** Runs the call; never throws (errors become the protocol's error answer). */
  const serve = async (
    plan: Plan,
    body: Uint8Array | ConnectError,
    headers: NodeRequestHeaders,
    socket: net.Socket | undefined,
    clientGone: () => boolean,
    register: (ctx: CallContext) => void,
  ): Promise<WireAnswer> => {
    const { entry, format } = plan;
    const ctx = new CallContext({
      service: entry.service,
      method: entry.method,
      protocolName: format.protocol === "grpc_web" ? "grpc-web" : format.protocol,
      target: plan,
      nodeHeaders: headers,
      values: opt.contextValues(socket, headers),
      timeoutMs: plan.timeoutMs,
      shutdown: inProgress,
      clientGone,
    });
    register(ctx);
    let message: Uint8Array | undefined;
    let error: ConnectError | undefined;
    try {
      if (body instanceof ConnectError) throw body;
      const parser = entry.serialization.getI(format.binary);
      const input = (
        format.protocol === "connect"
          ? parser.parse(body)
          : unaryEnvelopeMessage(body, opt.readMaxBytes, format.protocol === "grpc_web", (b) =>
              parser.parse(b),
            )
      ) as MessageShape<DescMessage>;
      const req = new CallRequest(false, entry.service, entry.method, input, ctx) as unknown as FastRequest;
      const chain = chains.get(entry) as (req: FastRequest) => Promise<UnaryResponse>;
      const res = await chain(req);
      adoptResponseHeader(res, ctx);
      adoptResponseTrailer(res, ctx);
      message = entry.serialization.getO(format.binary).serialize(res.message);
    } catch (e) {
      error =
        e instanceof ConnectError
          ? e
          : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
      ctx.end(error);
    } finally {
      ctx.end();
    }
    return encodeAnswer({
      format,
      message,
      error,
      responseHeader: ctx.responseHeaderIfSet,
      responseTrailer: ctx.responseTrailerIfSet,
      compression: plan.compression,
      compressMinBytes: opt.compressMinBytes,
    });
  };

  /** How one transport's request is read and answered. */
  interface Exchange {
    readonly body: BodySource;
    readonly headers: NodeRequestHeaders;
    /** The connection's socket (for HTTP/2, the session's proxy of it). */
    readonly socket: () => net.Socket | undefined;
    readonly clientGone: () => boolean;
    readonly onClose: (listener: () => void) => void;
    readonly write: (answer: WireAnswer) => void;
  }

  /** Reads the body, serves the call and writes the answer; a client gone first aborts the call. */
  const run = (plan: Plan, x: Exchange): true => {
    opt.served();
    let ctx: CallContext | undefined;
    let answered = false;
    x.onClose(() => {
      if (!answered) ctx?.clientGone();
    });
    readBody(x.body, plan, opt.readMaxBytes, x.headers["content-length"] as string | undefined, (body) => {
      void serve(plan, body, x.headers, x.socket(), x.clientGone, (c) => {
        ctx = c;
      }).then((answer) => {
        answered = true;
        x.write(answer);
      });
    });
    return true;
  };

  return {
    http2(stream, headers) {
      const streamPlan = admitStream(headers[":path"], headers);
      if (streamPlan) {
        serveStream(streamPlan, stream, headers);
        return true;
      }
      const plan = admit(
        headers[":method"],
        headers[":path"],
        headers,
        headers[":authority"] ?? "",
        headers[":scheme"] ?? "http",
      );
      if (!plan) return false;
      stream.on("error", ignore);
      return run(plan, {
        body: stream,
        headers,
        socket: () => stream.session?.socket,
        clientGone: () => stream.destroyed,
        // "close" and "wantTrailers" fire once; `on` spares the state object and bound function
        // `once` makes for every call.
        onClose: (l) => stream.on("close", l),
        write: (answer) => writeHttp2(stream, answer),
      });
    },

    http1(req, res) {
      const plan = admit(req.method, req.url, req.headers, req.headers.host ?? "", "http");
      // gRPC needs trailers, which HTTP/1.1 clients rarely read: leave it to Connect's handler.
      if (!plan || plan.format.protocol === "grpc") return false;
      return run(plan, {
        body: req,
        headers: req.headers,
        socket: () => req.socket,
        clientGone: () => req.destroyed && !req.complete,
        onClose: (l) => res.on("close", l),
        write: (answer) => writeHttp1Answer(res, answer),
      });
    },
  };
}

/**
 * Reads a request body and calls `done` once: with the bytes, or with Connect's error as soon as
 * the declared size (envelope header or Content-Length) exceeds readMaxBytes. What follows an
 * error is read and dropped, so the client is never left stuck on flow control.
 */
/** A request body as both transports deliver it. */
type BodySource = NodeJS.ReadableStream & { on(event: "data", l: (chunk: Buffer) => void): unknown };

function readBody(
  source: BodySource,
  plan: { readonly format: WireFormat },
  readMaxBytes: number,
  contentLength: string | undefined,
  done: (body: Uint8Array | ConnectError) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let failed = false;
  const enveloped = plan.format.protocol !== "connect";
  const fail = (err: ConnectError) => {
    failed = true;
    chunks.length = 0;
    done(err);
  };
  if (!enveloped && contentLength !== undefined) {
    const hint = Number(contentLength);
    if (Number.isSafeInteger(hint) && hint > readMaxBytes) {
      fail(
        new ConnectError(
          `message size ${hint} is larger than configured readMaxBytes ${readMaxBytes}`,
          Code.ResourceExhausted,
        ),
      );
    }
  }
  const onData = (chunk: Buffer) => {
    if (failed) return;
    chunks.push(chunk);
    size += chunk.byteLength;
    if (enveloped) {
      const head = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      const declared = declaredEnvelopeLength(head);
      if (declared !== undefined) {
        try {
          assertEnvelopeSize(declared, readMaxBytes);
        } catch (e) {
          fail(e as ConnectError);
        }
      }
      // One message and the header of another is all a unary body may hold.
      if (!failed && size > readMaxBytes + 10) {
        fail(
          new ConnectError(
            "protocol error: received extra input message for unary method",
            Code.Unimplemented,
          ),
        );
      }
    } else if (size > readMaxBytes) {
      fail(
        new ConnectError(
          `message size is larger than configured readMaxBytes ${readMaxBytes}`,
          Code.ResourceExhausted,
        ),
      );
    }
  };
  const onEnd = () => {
    // A stream call stays open long after its body: let go of this read.
    source.removeListener("data", onData);
    source.removeListener("end", onEnd);
    if (failed) return;
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    if (!enveloped && contentLength !== undefined) {
      const hint = Number(contentLength);
      if (Number.isSafeInteger(hint) && hint !== body.byteLength) {
        done(
          new ConnectError(
            `protocol error: promised ${hint} bytes, received ${body.byteLength}`,
            Code.InvalidArgument,
          ),
        );
        return;
      }
    }
    done(body);
  };
  source.on("data", onData);
  source.on("end", onEnd);
}

function writeHttp2(stream: http2.ServerHttp2Stream, a: WireAnswer): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  // respond() copies the headers, defaults :status to 200 and adds the Date header itself.
  const headers: http2.OutgoingHttpHeaders =
    a.status === 200 ? a.headers : { ...a.headers, ":status": a.status };
  const trailers = a.trailers;
  if (trailers) {
    stream.respond(headers, { waitForTrailers: true });
    stream.on("wantTrailers", () => {
      if (!stream.destroyed) stream.sendTrailers(trailers);
    });
  } else {
    stream.respond(headers);
  }
  if (a.body && a.body.byteLength > 0) stream.end(a.body);
  else stream.end();
}
