/**
 * What a differential scenario is, and builders for the requests of each protocol, so the corpus
 * (differential-scenarios.ts) reads as a list of cases rather than of byte layouts. A request is
 * written once, with its message in proto3 JSON form, and framed here for gRPC, gRPC-Web, Connect
 * binary, Connect JSON or a Connect GET exactly as a real client of that protocol frames it.
 */
import { type DescMethod, fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import type { RawRequest, Transport } from "./differential-client.js";

/** Wire protocol (and codec) of a scenario; `http` is for requests no RPC client would send. */
export type Protocol =
  | "grpc"
  | "grpc-web"
  | "grpc-web-text"
  | "connect-proto"
  | "connect-json"
  | "connect-get"
  | "http";

/** Which pair of gateways a scenario runs against. */
export type PairName =
  /** Authentication off; small read limit and maximum timeout. */
  | "open"
  /** Authentication on and low rate limits, for auth errors and ResourceExhausted. */
  | "auth";

/** Credentials a request carries; resolved per gateway (each has its own keys). */
export type Credential = "admin" | "read-only" | "unknown-key" | "malformed";

/** Calls a scenario may make on one gateway before its request (not compared). */
export interface ScenarioSetup {
  /** A Connect JSON call with the admin key (when auth is on); rejects unless it answers 200. */
  callJson(path: string, message: JsonValue): Promise<void>;
  /**
   * Empties the admin key's rate-limit bucket of `path`'s class: the same call, repeated until one
   * is let through (not ResourceExhausted), so the bucket is empty from that moment and refills
   * only a full interval later. A call that was refused would leave the next token due any moment.
   */
  takeLastToken(path: string, message: JsonValue): Promise<void>;
}

/** One request sent the same way to both gateways of a pair. */
export interface Scenario {
  /** Unique; the key of the allow-list of intended differences. */
  readonly name: string;
  readonly transport: Transport;
  readonly protocol: Protocol;
  readonly pair: PairName;
  readonly request: RawRequest;
  /** Adds `Authorization: Bearer <credential>` for the gateway at hand. */
  readonly credential?: Credential;
  /** Runs on each gateway right before its request. */
  readonly setup?: (gateway: ScenarioSetup) => Promise<void>;
  /**
   * Sent after the request on the same HTTP/2 session or kept-alive HTTP/1.1 connection (a new one
   * if the client closed it): shows the gateway, and the connection, still serve after the request.
   */
  readonly followUp?: RawRequest;
  /**
   * The outcome expected on both gateways when it is not a response: `abandoned` when the client
   * gives up mid-request ("no answer"), `reset` when HTTP/2 itself refuses the stream.
   */
  readonly expect?: "abandoned" | "reset";
}

/** A scenario named `<protocol>/<transport> <what>`, on the "open" pair unless `rest` says otherwise. */
export function scenario(
  protocol: Protocol,
  transport: Transport,
  what: string,
  rest: Omit<Scenario, "name" | "protocol" | "transport" | "pair"> & { readonly pair?: PairName },
): Scenario {
  return { name: `${protocol}/${transport} ${what}`, protocol, transport, pair: "open", ...rest };
}

/** `/<service>/<method>` of a method. */
export function pathOf(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** The binary encoding of `json` as the method's input message. */
export function binaryInput(method: DescMethod, json: JsonValue): Uint8Array {
  return toBinary(method.input, fromJson(method.input, json));
}

/** Frames `message` as one length-prefixed envelope (gRPC, gRPC-Web); `flags` 1 marks it compressed. */
export function envelope(message: Uint8Array, flags = 0, declaredLength = message.length): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(flags, 0);
  header.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([header, message]);
}

/** Headers each protocol's clients send with a unary call. */
export const protocolHeaders: Readonly<Record<Exclude<Protocol, "http">, Readonly<Record<string, string>>>> =
  {
    grpc: { "content-type": "application/grpc", te: "trailers" },
    "grpc-web": { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
    "grpc-web-text": { "content-type": "application/grpc-web-text", "x-grpc-web": "1" },
    "connect-proto": { "content-type": "application/proto", "connect-protocol-version": "1" },
    "connect-json": { "content-type": "application/json", "connect-protocol-version": "1" },
    "connect-get": {},
  };

/**
 * A well-formed unary call of `method` with `message` (proto3 JSON) in `protocol`'s framing;
 * `headers` are added to (or replace) the protocol's own.
 */
export function unaryCall(
  protocol: Exclude<Protocol, "http">,
  method: DescMethod,
  message: JsonValue,
  headers: Readonly<Record<string, string>> = {},
): RawRequest {
  const path = pathOf(method);
  const all = { ...protocolHeaders[protocol], ...headers };
  switch (protocol) {
    case "grpc":
    case "grpc-web":
      return { method: "POST", path, headers: all, body: envelope(binaryInput(method, message)) };
    case "grpc-web-text":
      return {
        method: "POST",
        path,
        headers: all,
        body: Buffer.from(envelope(binaryInput(method, message)).toString("base64")),
      };
    case "connect-proto":
      return { method: "POST", path, headers: all, body: binaryInput(method, message) };
    case "connect-json":
      return { method: "POST", path, headers: all, body: Buffer.from(JSON.stringify(message)) };
    case "connect-get": {
      const query = new URLSearchParams({
        connect: "v1",
        encoding: "json",
        message: JSON.stringify(message),
      });
      return { method: "GET", path: `${path}?${query}`, headers: all, body: new Uint8Array(0) };
    }
  }
}

/** A request of `protocol`'s framing headers with a raw `body` (for malformed input). */
export function rawCall(
  protocol: Exclude<Protocol, "http" | "connect-get">,
  path: string,
  body: Uint8Array | string,
  headers: Readonly<Record<string, string>> = {},
): RawRequest {
  return {
    method: "POST",
    path,
    headers: { ...protocolHeaders[protocol], ...headers },
    body: typeof body === "string" ? Buffer.from(body) : body,
  };
}
