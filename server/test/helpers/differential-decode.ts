/**
 * Wire decoding for the fast-path differential suite: turns the bytes of an answer into JSON a test
 * can compare, using the generated schemas in gen/. Length-prefixed envelopes (gRPC, gRPC-Web),
 * the gRPC-Web trailer frame, grpc-status-details-bin (google.rpc.Status, which gen/ does not hold,
 * so it is read field by field), Connect error bodies with their details, and compressed bodies.
 *
 * Nothing here throws on bad input: what cannot be decoded is reported as such (with its bytes), so
 * a broken answer from one side shows up in the diff instead of aborting the comparison.
 */
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import {
  createRegistry,
  type DescMessage,
  type DescMethod,
  fromBinary,
  type JsonValue,
  toJson,
} from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { file_google_rpc_error_details } from "../../../gen/google/rpc/error_details_pb.js";
import { Health } from "../../../gen/grpc/health/v1/health_pb.js";
import { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import { SpageExecution } from "../../../gen/spage/core/execution_pb.js";

/** Error detail types the gateway sends (google.rpc.*), for decoding google.protobuf.Any. */
const detailRegistry = createRegistry(file_google_rpc_error_details);

const methodsByPath = new Map<string, DescMethod>(
  [SpageAPI, SpageExecution, Health].flatMap((s) =>
    s.methods.map((m) => [`/${s.typeName}/${m.name}`, m] as const),
  ),
);

/** The RPC a request path names (query string ignored), if the gateway serves it. */
export function methodOfPath(path: string): DescMethod | undefined {
  return methodsByPath.get(path.split("?")[0] ?? "");
}

/** A message decoded with its schema, as proto3 JSON; or why it could not be. */
export function decodeMessage(schema: DescMessage | undefined, bytes: Uint8Array): JsonValue {
  if (!schema) return { undecodable: "no schema for this path", base64: toBase64(bytes) };
  try {
    return toJson(schema, fromBinary(schema, bytes), { registry: detailRegistry });
  } catch (err) {
    return { undecodable: (err as Error).message, base64: toBase64(bytes) };
  }
}

/** One length-prefixed message of a gRPC or gRPC-Web body. */
export interface Envelope {
  readonly flags: number;
  readonly data: Buffer;
}

/** Splits a body into envelopes; `rest` holds the bytes of an incomplete last envelope. */
export function splitEnvelopes(body: Buffer): { envelopes: Envelope[]; rest: Buffer } {
  const envelopes: Envelope[] = [];
  let at = 0;
  while (body.length - at >= 5) {
    const length = body.readUInt32BE(at + 1);
    if (body.length - at - 5 < length) break;
    envelopes.push({ flags: body.readUInt8(at), data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return { envelopes, rest: body.subarray(at) };
}

/** Parses a gRPC-Web trailer frame (HTTP/1-style `name: value` lines) into lower-case fields. */
export function parseTrailerBlock(block: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of block.toString("latin1").split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    out[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return out;
}

/** Decompresses `bytes` with a gRPC or HTTP content-coding name (none or identity: as they are). */
export function decompress(encoding: string | undefined, bytes: Buffer): Buffer | { undecodable: string } {
  try {
    switch (encoding) {
      case undefined:
      case "":
      case "identity":
        return bytes;
      case "gzip":
        return gunzipSync(bytes);
      case "br":
        return brotliDecompressSync(bytes);
      default:
        return { undecodable: `unknown encoding ${encoding}` };
    }
  } catch (err) {
    return { undecodable: `${encoding}: ${(err as Error).message}` };
  }
}

/**
 * Decodes grpc-status-details-bin (unpadded base64 of google.rpc.Status: code = 1, message = 2,
 * details = 3 as google.protobuf.Any) with each detail unpacked to JSON.
 */
export function decodeStatusDetails(base64: string): JsonValue {
  try {
    const reader = new BinaryReader(Buffer.from(base64, "base64"));
    let code = 0;
    let message = "";
    const details: JsonValue[] = [];
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1 && wireType === WireType.Varint) code = reader.int32();
      else if (field === 2 && wireType === WireType.LengthDelimited) message = reader.string();
      else if (field === 3 && wireType === WireType.LengthDelimited) details.push(decodeAny(reader.bytes()));
      else reader.skip(wireType);
    }
    return { code, message, details };
  } catch (err) {
    return { undecodable: (err as Error).message, base64 };
  }
}

function decodeAny(bytes: Uint8Array): JsonValue {
  try {
    return toJson(AnySchema, fromBinary(AnySchema, bytes), { registry: detailRegistry });
  } catch (err) {
    return { undecodable: (err as Error).message, base64: toBase64(bytes) };
  }
}

/**
 * A Connect error body (`{code, message, details: [{type, value, debug}]}`) with every detail's
 * base64 value decoded by its type; other JSON is returned as parsed.
 */
export function decodeConnectError(json: JsonValue): JsonValue {
  if (typeof json !== "object" || json === null || Array.isArray(json) || !Array.isArray(json.details)) {
    return json;
  }
  const details = json.details.map((d): JsonValue => {
    if (typeof d !== "object" || d === null || Array.isArray(d)) return d;
    const { type, value } = d;
    const schema = typeof type === "string" ? detailRegistry.getMessage(type) : undefined;
    return typeof value === "string"
      ? { ...d, value: decodeMessage(schema, Buffer.from(value, "base64")) }
      : d;
  });
  return { ...json, details };
}

/** Parses UTF-8 JSON, or reports the text that is not JSON. */
export function parseJson(bytes: Buffer): JsonValue {
  try {
    return JSON.parse(bytes.toString("utf8")) as JsonValue;
  } catch {
    return { notJson: bytes.toString("utf8") };
  }
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}
