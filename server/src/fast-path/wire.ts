/**
 * What the fast path reads and writes on the wire for each protocol, with Connect's own helpers
 * (status mapping, error JSON, trailer serialization, compression negotiation), so an answer is
 * the one Connect's handler would give: which content types are taken, how a unary request body is
 * unpacked (envelope rules and readMaxBytes), and how a result or an error becomes status,
 * headers, body and trailers.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { type Compression, encodeEnvelope, mergeNonProtocolHeaders } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes, trailerMux } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { reencodeConnectGrpcMessage } from "../protocol/grpc-message.js";

/** The protocols the fast path speaks. */
export type WireProtocol = "grpc" | "grpc_web" | "connect";

/** A request's protocol and codec, from its content type. */
export interface WireFormat {
  readonly protocol: WireProtocol;
  readonly binary: boolean;
}

/**
 * Content types taken, exactly as clients send them; anything else (JSON over gRPC, unusual
 * spellings, streaming types) is left to Connect's handler.
 */
const formats: ReadonlyMap<string, WireFormat> = new Map([
  ["application/grpc", { protocol: "grpc", binary: true }],
  ["application/grpc+proto", { protocol: "grpc", binary: true }],
  ["application/grpc-web", { protocol: "grpc_web", binary: true }],
  ["application/grpc-web+proto", { protocol: "grpc_web", binary: true }],
  ["application/proto", { protocol: "connect", binary: true }],
  ["application/json", { protocol: "connect", binary: false }],
  ["application/json; charset=utf-8", { protocol: "connect", binary: false }],
  ["application/json;charset=utf-8", { protocol: "connect", binary: false }],
]);

/** The format of a content type the fast path takes, or undefined. */
export function wireFormatOf(contentType: string | undefined): WireFormat | undefined {
  return contentType === undefined ? undefined : formats.get(contentType);
}

/** The envelope header of a gRPC / gRPC-Web message: 1 flag byte and a 4-byte length. */
const envelopeHeaderBytes = 5;
const compressedFlag = 0b00000001;

/**
 * The one message of a unary (or server-streaming) gRPC or gRPC-Web request body, parsed, with
 * Connect's errors in
 * Connect's order: envelopes are taken one at a time (size, completeness, compression flag, then
 * parsing), gRPC-Web end-of-stream envelopes are skipped, and a second message is refused only
 * after it parsed.
 */
export function unaryEnvelopeMessage<T>(
  body: Uint8Array,
  readMaxBytes: number,
  skipEndStream: boolean,
  parse: (bytes: Uint8Array) => T,
  kind: "unary" | "server-streaming" = "unary",
): T {
  let offset = 0;
  let first: { value: T } | undefined;
  while (offset < body.byteLength) {
    const rest = body.subarray(offset);
    const declared = declaredEnvelopeLength(rest);
    if (declared === undefined) throw incompleteEnvelope();
    assertEnvelopeSize(declared, readMaxBytes);
    if (rest.byteLength < envelopeHeaderBytes + declared) throw incompleteEnvelope();
    const flags = rest[0] ?? 0;
    offset += envelopeHeaderBytes + declared;
    if ((flags & compressedFlag) !== 0) {
      throw new ConnectError(
        "received compressed envelope, but do not know how to decompress",
        Code.Internal,
      );
    }
    if (skipEndStream && (flags & trailerFlag) === trailerFlag) continue;
    const value = parse(rest.subarray(envelopeHeaderBytes, envelopeHeaderBytes + declared));
    if (first) {
      throw new ConnectError(
        `protocol error: received extra input message for ${kind} method`,
        Code.Unimplemented,
      );
    }
    first = { value };
  }
  if (!first) {
    throw new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented);
  }
  return first.value;
}

/** The length an envelope header declares, or undefined while the header is incomplete. */
export function declaredEnvelopeLength(bytes: Uint8Array): number | undefined {
  if (bytes.byteLength < envelopeHeaderBytes) return undefined;
  return new DataView(bytes.buffer, bytes.byteOffset, envelopeHeaderBytes).getUint32(1);
}

/** Connect's error for a message larger than readMaxBytes, decided from its declared size. */
export function assertEnvelopeSize(declared: number, readMaxBytes: number): void {
  if (declared > readMaxBytes) {
    throw new ConnectError(
      `message size ${declared} is larger than configured readMaxBytes ${readMaxBytes}`,
      Code.ResourceExhausted,
    );
  }
}

function incompleteEnvelope(): ConnectError {
  return new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
}

/** An answer ready to write: status, headers, body and (gRPC only) trailers. */
export interface WireAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array | undefined;
  readonly trailers: Record<string, string> | undefined;
}

/** What the call produced: the serialized result or the error, and what the call set. */
export interface CallOutcome {
  readonly format: WireFormat;
  /** The serialized response message; undefined when the call failed. */
  readonly message: Uint8Array | undefined;
  readonly error: ConnectError | undefined;
  readonly responseHeader: Headers | undefined;
  readonly responseTrailer: Headers | undefined;
  /** The negotiated response compression, if any. */
  readonly compression: Compression | null;
  readonly compressMinBytes: number;
}

const contentTypes: Record<WireProtocol, { binary: string; json: string }> = {
  grpc: { binary: "application/grpc+proto", json: "application/grpc+json" },
  grpc_web: { binary: "application/grpc-web+proto", json: "application/grpc-web+json" },
  connect: { binary: "application/proto", json: "application/json" },
};

function toRecord(h: Headers | undefined, into: Record<string, string>): Record<string, string> {
  h?.forEach((value, name) => {
    into[name] = value;
  });
  return into;
}

/**
 * The answer for a call's outcome in its protocol: at once for a plain success, a promise when
 * something must be compressed or the outcome is an error or carries headers or trailers.
 */
export function encodeAnswer(o: CallOutcome): WireAnswer | Promise<WireAnswer> {
  const { protocol } = o.format;
  const plain = !o.error && !o.responseHeader && !o.responseTrailer && o.message;
  if (protocol === "connect") return plain && !o.compression ? connectSuccess(o) : encodeConnect(o);
  if (plain) return encodeGrpcSuccess(o);
  return encodeGrpcOutcome(o);
}

async function encodeGrpcOutcome(o: CallOutcome): Promise<WireAnswer> {
  const { protocol } = o.format;
  const header = grpcHeaders(o.format, o.compression, o.responseHeader);
  const envelope = o.message && !o.error ? await messageEnvelope(o, o.message) : undefined;
  if (protocol === "grpc") {
    return {
      status: 200,
      headers: header,
      body: envelope,
      trailers: grpcTrailers(o.responseTrailer, o.error),
    };
  }
  const trailer = new Headers(o.responseTrailer);
  if (!trailer.has("grpc-status")) trailer.set("grpc-status", "0");
  setTrailerStatus(trailer, o.error);
  const trailerFrame = encodeEnvelope(trailerFlag, trailerSerialize(trailer));
  const body = envelope ? concat(envelope, trailerFrame) : trailerFrame;
  return { status: 200, headers: header, body, trailers: undefined };
}

/** gRPC or gRPC-Web response headers: what the call set, the content type and the compression. */
export function grpcHeaders(
  format: WireFormat,
  compression: Compression | null,
  responseHeader: Headers | undefined,
): Record<string, string> {
  const header = toRecord(responseHeader, {});
  const types = contentTypes[format.protocol];
  header["content-type"] = format.binary ? types.binary : types.json;
  if (compression) header["grpc-encoding"] = compression.name;
  return header;
}

/**
 * gRPC trailers: what the call set, then the status of `error` (or 0), with grpc-message
 * percent-encoded as Connect's handler sends it over HTTP/2.
 */
export function grpcTrailers(
  responseTrailer: Headers | undefined,
  error: ConnectError | undefined,
): Record<string, string> {
  const trailer = new Headers(responseTrailer);
  if (!trailer.has("grpc-status")) trailer.set("grpc-status", "0");
  setTrailerStatus(trailer, error);
  const trailers = toRecord(trailer, {});
  const message = trailers["grpc-message"];
  if (message !== undefined) trailers["grpc-message"] = reencodeConnectGrpcMessage(message);
  return trailers;
}

/** The common case without Headers objects: a result, and nothing set by the call. */
function encodeGrpcSuccess(o: CallOutcome): WireAnswer | Promise<WireAnswer> {
  const { protocol, binary } = o.format;
  const headers: Record<string, string> = {
    "content-type": binary ? contentTypes[protocol].binary : contentTypes[protocol].json,
  };
  if (o.compression) headers["grpc-encoding"] = o.compression.name;
  const answer = (envelope: Uint8Array): WireAnswer =>
    protocol === "grpc"
      ? { status: 200, headers, body: envelope, trailers: { "grpc-status": "0" } }
      : { status: 200, headers, body: concat(envelope, grpcWebOkTrailer), trailers: undefined };
  const envelope = messageEnvelope(o, o.message as Uint8Array);
  return envelope instanceof Uint8Array ? answer(envelope) : envelope.then(answer);
}

/** The response message as one envelope, compressed when negotiated and large enough. */
function messageEnvelope(o: CallOutcome, message: Uint8Array): Promise<Uint8Array> | Uint8Array {
  return envelopeOf(message, o.compression, o.compressMinBytes);
}

/** A message as one envelope, compressed when `compression` is set and it is large enough. */
export function envelopeOf(
  message: Uint8Array,
  compression: Compression | null,
  compressMinBytes: number,
): Promise<Uint8Array> | Uint8Array {
  if (compression && message.byteLength >= compressMinBytes) {
    return compression.compress(message).then((c) => encodeEnvelope(compressedFlag, c));
  }
  return encodeEnvelope(0, message);
}

/** The gRPC-Web trailer frame of a success with no trailers set. */
const grpcWebOkTrailer = encodeEnvelope(trailerFlag, trailerSerialize(new Headers({ "grpc-status": "0" })));

/** A Connect success without headers, trailers or compression. */
function connectSuccess(o: CallOutcome): WireAnswer {
  const message = o.message as Uint8Array;
  return {
    status: 200,
    headers: {
      "content-type": o.format.binary ? contentTypes.connect.binary : contentTypes.connect.json,
      "content-length": message.byteLength.toString(10),
    },
    body: message,
    trailers: undefined,
  };
}

async function encodeConnect(o: CallOutcome): Promise<WireAnswer> {
  const header = new Headers(o.responseHeader);
  let status = 200;
  let body: Uint8Array;
  if (o.error || !o.message) {
    const error = o.error ?? new ConnectError("internal error", Code.Internal);
    status = codeToHttpStatus(error.code);
    header.set("content-type", contentTypes.connect.json);
    if (!error.isWireError) mergeNonProtocolHeaders(header, error.metadata);
    body = errorToJsonBytes(error, undefined);
  } else {
    header.set("content-type", o.format.binary ? contentTypes.connect.binary : contentTypes.connect.json);
    body = o.message;
  }
  if (o.compression && body.byteLength >= o.compressMinBytes) {
    body = await o.compression.compress(body);
    header.set("content-encoding", o.compression.name);
  }
  const all = trailerMux(header, o.responseTrailer ?? new Headers());
  all.set("content-length", body.byteLength.toString(10));
  return { status, headers: toRecord(all, {}), body, trailers: undefined };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}
