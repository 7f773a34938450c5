/**
 * Normalisation of raw answers for the fast-path differential suite. Two gateways given the same
 * request must give the same normalised answer; what is removed or replaced here is exactly what
 * may differ between two correct gateways (or two runs of one), each for the reason given:
 *
 * - `date`: the clock.
 * - `content-length` and `transfer-encoding`: framing. Connect's handler sends a unary Connect answer
 *   with a length and streams gRPC and gRPC-Web bodies chunked over HTTP/1.1; a fast path that knows
 *   the whole answer may send a length instead. Clients see the same bytes, and the body itself is
 *   compared (decoded).
 * - `grpc-message`: compared percent-decoded (clients decode it), plus which encoding was used
 *   ("spec": only non-printable bytes and `%`, which the gateway sends on native gRPC because
 *   @grpc/grpc-js decodes with decodeURI; "uri-component": Connect's encodeURIComponent).
 * - `grpc-status-details-bin`: decoded to google.rpc.Status with its details unpacked.
 * - Bodies: decoded with the generated schemas (gRPC and gRPC-Web envelopes after decompression,
 *   Connect binary, Connect JSON as parsed JSON, Connect error details unpacked); whether a message
 *   was compressed is kept, the compressed bytes are not (compression levels may differ).
 * - Values that differ per gateway or per run (`volatileKeys`: timestamps, event sequences, page
 *   tokens, durations, store ping time, uptime, token expiry, retry delays) are replaced by
 *   placeholders; whether the field is present is still compared. In any text, generated UUIDs (task
 *   ids), API key ids ("key:<16 hex>", random per gateway) and the milliseconds a rate-limit message
 *   quotes ("retry in N ms") are replaced too; the Retry-After header is kept (whole seconds, the
 *   same on both sides). A HealthStatus "degraded" because a store ping was slow counts as healthy.
 *
 * GetMetrics' fast_path_calls_total is dropped: a counter of the fast path itself.
 *
 * Kept as observations of their own: whether an HTTP/2 request stream was left open after the
 * answer (`requestStuck`) and whether an HTTP/1.1 follow-up reused the kept-alive connection.
 */
import type { DescMessage, JsonObject, JsonValue } from "@bufbuild/protobuf";
import { encodeGrpcMessage } from "../../src/protocol/grpc-message.js";
import type { RawAnswer, RawHeaders } from "./differential-client.js";
import {
  decodeConnectError,
  decodeMessage,
  decodeStatusDetails,
  decompress,
  methodOfPath,
  parseJson,
  parseTrailerBlock,
  splitEnvelopes,
} from "./differential-decode.js";

/** An answer reduced to what must be the same on both gateways. */
export interface NormalisedAnswer {
  readonly outcome: RawAnswer["kind"];
  readonly status?: number;
  readonly headers?: JsonObject;
  readonly trailers?: JsonObject;
  readonly body?: JsonValue;
  /** See RawAnswer: the request stream was left open after the answer. */
  readonly requestStuck?: boolean;
  /** See RawAnswer: an HTTP/1.1 follow-up went on the connection kept alive after the first answer. */
  readonly reusedConnection?: boolean;
  readonly resetCode?: string;
  /** The answer to the follow-up request sent after this one, if any. */
  readonly followUp?: NormalisedAnswer;
}

/** Headers that never take part in the comparison (see the file comment). */
const ignoredHeaders = new Set(["date", "content-length", "transfer-encoding"]);

/** JSON keys (proto3 JSON names, or map keys) whose values differ per gateway or per run. */
const volatileKeys = new Set([
  // google.protobuf.Timestamp fields of Task, TaskAttempt, Event, Daemon, HealthStatus, Metrics
  "createdAt",
  "updatedAt",
  "startedAt",
  "completedAt",
  "deadlineAt",
  "cancelDeadline",
  "assignedAt",
  "endedAt",
  "connectedAt",
  "lastSeen",
  "timestamp",
  // positions in the event log, and page tokens that carry a store position
  "sequence",
  "events_total",
  "event_sequence",
  "nextPageToken",
  // HealthStatus.details and Metrics.gauges
  "store_ping_ms",
  "uptime_seconds",
  // AuthResponse
  "token",
  "expiresAt",
  // google.rpc.RetryInfo: the milliseconds left in a rate-limit bucket when the call arrived
  "retryDelay",
]);

/**
 * Keys that only the fast path can report: GetMetrics' count of the calls it served
 * (server/src/fast-path). Dropped, so the rest of the metrics (RPCs by code, tasks) is compared.
 */
const fastPathOnlyKeys = new Set(["fast_path_calls_total"]);

const uuidPattern = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** Normalises `answer` to the request for `path` (whose method gives the response schema). */
export function normaliseAnswer(answer: RawAnswer, path: string): NormalisedAnswer {
  switch (answer.kind) {
    case "abandoned":
      return { outcome: answer.kind };
    case "timed-out":
      return { outcome: answer.kind, status: answer.status };
    case "reset":
      return { outcome: answer.kind, status: answer.status, resetCode: answer.code };
    case "response":
      return scrub({
        outcome: answer.kind,
        status: answer.status,
        headers: normaliseFields(answer.headers),
        trailers: normaliseFields(answer.trailers),
        body: normaliseBody(answer, path),
        requestStuck: answer.requestStuck,
        reusedConnection: answer.reusedConnection,
      } as unknown as JsonObject) as unknown as NormalisedAnswer;
  }
}

/** Headers, trailers or a gRPC-Web trailer frame, with the gRPC fields decoded. */
function normaliseFields(fields: RawHeaders): JsonObject {
  const out: JsonObject = {};
  for (const name of Object.keys(fields).sort()) {
    if (ignoredHeaders.has(name)) continue;
    const raw = fields[name];
    const value = typeof raw === "string" ? raw : (raw ?? []).join(", ");
    if (name === "grpc-message") out[name] = grpcMessage(value);
    else if (name === "grpc-status-details-bin") out[name] = decodeStatusDetails(value);
    else out[name] = value;
  }
  return out;
}

function grpcMessage(raw: string): JsonValue {
  let text: string;
  try {
    text = decodeURIComponent(raw);
  } catch {
    return { undecodable: raw };
  }
  const encoding =
    raw === encodeGrpcMessage(text) ? "spec" : raw === encodeURIComponent(text) ? "uri-component" : "other";
  return { text, encoding };
}

function normaliseBody(answer: RawAnswer & { kind: "response" }, path: string): JsonValue | undefined {
  if (answer.body.length === 0) return undefined;
  const contentType = header(answer.headers, "content-type")?.split(";")[0]?.trim().toLowerCase() ?? "";
  const method = methodOfPath(path);
  if (contentType.startsWith("application/grpc")) {
    const web = contentType.startsWith("application/grpc-web");
    const bytes = contentType.startsWith("application/grpc-web-text")
      ? Buffer.from(answer.body.toString("latin1"), "base64")
      : answer.body;
    const json = /^application\/grpc(-web)?\+json$/.test(contentType);
    return envelopes(bytes, header(answer.headers, "grpc-encoding"), web, json ? "json" : method?.output);
  }
  const body = decompress(header(answer.headers, "content-encoding"), answer.body);
  if (!Buffer.isBuffer(body)) return body;
  if (contentType === "application/proto" && answer.status === 200) {
    return decodeMessage(method?.output, body);
  }
  if (contentType === "application/json") {
    const json = parseJson(body);
    return answer.status === 200 ? json : decodeConnectError(json);
  }
  return { [contentType || "no content-type"]: body.toString("utf8") };
}

function envelopes(
  body: Buffer,
  encoding: string | undefined,
  web: boolean,
  /** The response message's schema, or "json" for the JSON codec (application/grpc+json). */
  output: DescMessage | undefined | "json",
): JsonValue {
  const { envelopes: all, rest } = splitEnvelopes(body);
  const out = all.map(({ flags, data }): JsonObject => {
    const compressed = (flags & 0x01) !== 0;
    const bytes = compressed ? decompress(encoding, data) : data;
    if (!Buffer.isBuffer(bytes)) return { flags, message: bytes };
    // gRPC-Web sends its trailers as a last envelope with the high bit set.
    if (web && (flags & 0x80) !== 0) return { flags, trailers: normaliseFields(parseTrailerBlock(bytes)) };
    return { flags, message: output === "json" ? parseJson(bytes) : decodeMessage(output, bytes) };
  });
  return rest.length === 0 ? out : [...out, { incomplete: rest.toString("base64") }];
}

function header(fields: RawHeaders, name: string): string | undefined {
  const value = fields[name];
  return typeof value === "string" ? value : value?.[0];
}

/** Replaces volatile values by placeholders, everywhere in `value`. */
function scrub(value: JsonValue): JsonValue {
  if (typeof value === "string") {
    return (
      value
        .replace(uuidPattern, "<uuid>")
        .replace(/retry in \d+ ms/g, "retry in <n> ms")
        // API key ids are random per gateway (e.g. "rate limit ... exceeded by key:<id>").
        .replace(/\bkey:[0-9a-f]{16}\b/g, "key:<key id>")
        .replace(/a ping took \d+ ms/g, "a ping took <n> ms")
    );
  }
  if (Array.isArray(value)) return value.map(scrub);
  if (value === null || typeof value !== "object") return value;
  const out: JsonObject = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined || fastPathOnlyKeys.has(key)) continue;
    if (volatileKeys.has(key)) out[key] = `<${key}>`;
    else if (key === "histograms" && v !== null && typeof v === "object" && !Array.isArray(v)) {
      // Queue and run time quantiles of finished tasks: durations; their counts are kept.
      out[key] = Object.fromEntries(
        Object.entries(v).map(([k, n]) => [k, k.endsWith("_count") ? n : "<duration>"]),
      );
    } else out[key] = scrub(v);
  }
  return healthAsServing(out);
}

/**
 * HealthStatus reports "degraded" when a store ping took over 500 ms: the machine's load, not the
 * protocol. Such an answer is compared as the "healthy" one it would otherwise be.
 */
function healthAsServing(o: JsonObject): JsonObject {
  const slow = typeof o.message === "string" && o.message.startsWith("store is slow:");
  return o.status === "degraded" && slow ? { ...o, status: "healthy", message: "serving" } : o;
}
