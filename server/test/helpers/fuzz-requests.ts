/**
 * Building blocks of the fuzz test (fuzz.test.ts): fast-check generators of request bodies built
 * from the generated schemas (valid-shaped messages, mutated binary encodings, mutated JSON), one
 * Connect request over plain fetch (HTTP/1.1) that can neither hang nor leave a stream open, and
 * the check that an answer is a proper Connect answer.
 */
import assert from "node:assert/strict";
import {
  create,
  type DescEnum,
  type DescField,
  type DescMessage,
  type DescMethod,
  fromBinary,
  fromJsonString,
  type JsonObject,
  type Message,
  type MessageInitShape,
  ScalarType,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { codeFromString, codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import fc from "fast-check";
import { allScopes } from "../../src/auth/scopes.js";

// ---------------------------------------------------------------------------------------------
// Connect over fetch
// ---------------------------------------------------------------------------------------------

/** The two Connect codecs fuzzed. */
export type Codec = "json" | "proto";

/** Flag of the Connect end-of-stream envelope. */
export const endStreamFlag = 0b10;

/** Frames `payload` as one Connect streaming envelope (flags byte, 4-byte big-endian length, payload). */
export function envelope(payload: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/** One streaming envelope of a response. */
export interface Frame {
  readonly flags: number;
  readonly data: Uint8Array;
}

/** Splits a streaming body into envelopes; `rest` holds the bytes of an incomplete last envelope. */
export function parseFrames(body: Uint8Array): { frames: Frame[]; rest: Uint8Array } {
  const frames: Frame[] = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  while (body.length - at >= 5) {
    const length = view.getUint32(at + 1);
    if (body.length - at - 5 < length) break;
    frames.push({ flags: body[at] ?? 0, data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return { frames, rest: body.subarray(at) };
}

/** Content type of a request or answer for a codec, unary or streaming. */
export function contentTypeOf(codec: Codec, streaming: boolean): string {
  return `application/${streaming ? "connect+" : ""}${codec}`;
}

/** One Connect request as sent. */
export interface ConnectRequest {
  /** `/<service>/<method>`. */
  readonly path: string;
  /** Connect streaming protocol (server-streaming and bidi methods) instead of unary. */
  readonly streaming: boolean;
  readonly codec: Codec;
  /** The whole HTTP body (already enveloped for streaming). */
  readonly body: Uint8Array;
  /** Authorization header value; no header when undefined. */
  readonly authorization?: string | undefined;
}

/** What came back. */
export interface ConnectAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: Uint8Array;
  /**
   * Streaming only: the answer was still open (a live stream, e.g. WatchEvents following new
   * events) after `idleMs` without data, and was cancelled by the client.
   */
  readonly cutWhileIdle: boolean;
}

/**
 * Sends one Connect request with fetch (HTTP/1.1) and reads the whole answer. Fails with "no answer
 * within …" after `timeoutMs`: a hang is a failure. With `idleMs`, a streaming answer that stays
 * silent that long is cancelled (and reported as `cutWhileIdle`) instead: live streams never end
 * on their own.
 */
export async function sendConnect(
  baseUrl: string,
  req: ConnectRequest,
  opts: { timeoutMs: number; idleMs?: number },
): Promise<ConnectAnswer> {
  const headers: Record<string, string> = { "content-type": contentTypeOf(req.codec, req.streaming) };
  if (!req.streaming) headers["connect-protocol-version"] = "1";
  if (req.authorization !== undefined) headers.authorization = req.authorization;
  const cancel = new AbortController();
  const deadline = AbortSignal.timeout(opts.timeoutMs);
  const signal = AbortSignal.any([deadline, cancel.signal]);
  let idleTimer: NodeJS.Timeout | undefined;
  /** Resolves with "idle" after idleMs (restarted by every call), never when idleMs is unset. */
  const idle = (): Promise<"idle"> =>
    new Promise((resolve) => {
      clearTimeout(idleTimer);
      if (opts.idleMs !== undefined) idleTimer = setTimeout(() => resolve("idle"), opts.idleMs);
    });
  const hang = () =>
    new Error(`${req.path}: no complete answer within ${opts.timeoutMs} ms (the server hangs)`);
  try {
    const fetched = fetch(new URL(req.path, baseUrl), { method: "POST", headers, body: req.body, signal });
    fetched.catch(() => {});
    const first = await Promise.race([fetched, idle()]).catch((err: unknown) => {
      throw deadline.aborted ? hang() : err;
    });
    if (first === "idle") {
      cancel.abort();
      return { status: 0, contentType: "", body: new Uint8Array(0), cutWhileIdle: true };
    }
    const res = first;
    const contentType = res.headers.get("content-type") ?? "";
    const chunks: Uint8Array[] = [];
    const reader = res.body?.getReader();
    let cutWhileIdle = false;
    if (reader) {
      for (;;) {
        const next = await Promise.race([reader.read(), idle()]).catch((err: unknown) => {
          throw deadline.aborted ? hang() : err;
        });
        if (next === "idle") {
          cutWhileIdle = true;
          cancel.abort();
          await reader.cancel().catch(() => {});
          break;
        }
        if (next.done) break;
        chunks.push(next.value);
      }
    }
    return { status: res.status, contentType, body: Buffer.concat(chunks), cutWhileIdle };
  } finally {
    clearTimeout(idleTimer);
  }
}

// ---------------------------------------------------------------------------------------------
// Is it a proper Connect answer?
// ---------------------------------------------------------------------------------------------

/** A Connect error as it came back. */
export interface WireError {
  readonly code: string;
  readonly message: string;
}

/** An answer that passed `checkConnectAnswer`. */
export interface CheckedAnswer {
  /** Decoded response messages (one for a successful unary call). */
  readonly messages: readonly Message[];
  /** The error the call ended with, if it failed. */
  readonly error?: WireError | undefined;
  /** A live stream cancelled by the client while it was still open. */
  readonly cutWhileIdle: boolean;
}

/** Text that must never reach a client: stack frames, JS error classes, source paths, driver errors. */
const leakPatterns: readonly RegExp[] = [
  /\n\s*at /,
  /\bat \S+ \(/,
  /\b(TypeError|ReferenceError|RangeError|SyntaxError|EvalError|AssertionError|SqliteError)\b/,
  /Cannot read propert|is not a function|is not iterable|Maximum call stack|Invalid time value/i,
  /\/work\//,
  /node_modules/,
  /\.[cm]?[jt]s:\d/,
  /\bSQLITE_[A-Z]+/,
];

/**
 * Internal errors that are connect-es' own and not the gateway's, raised before any interceptor
 * runs: a protobuf binary body that does not parse ("parse binary: …", see hostile-input.test.ts)
 * and a streaming envelope flagged compressed without an encoding. Every other internal or unknown
 * answer is an unexpected exception in the gateway, i.e. a bug.
 */
const tolerableInternal =
  /^(parse binary: |received compressed envelope, but do not know how to decompress$)/;

/**
 * Asserts `err` is a proper Connect error: a known code, a string message that leaks nothing,
 * and not internal/unknown (except connect-es' binary parse failures).
 */
export function assertProperError(err: unknown, where: string): WireError {
  assert.ok(
    err !== null && typeof err === "object" && !Array.isArray(err),
    `${where}: error is not an object`,
  );
  const { code, message } = err as { code?: unknown; message?: unknown };
  assert.equal(typeof code, "string", `${where}: error without a string code: ${JSON.stringify(err)}`);
  assert.ok(
    codeFromString(code as string) !== undefined,
    `${where}: "${code}" is not a Connect code: ${JSON.stringify(err)}`,
  );
  assert.ok(
    message === undefined || typeof message === "string",
    `${where}: error message is not a string: ${JSON.stringify(err)}`,
  );
  const text = (message as string | undefined) ?? "";
  for (const p of leakPatterns) {
    assert.doesNotMatch(text, p, `${where}: error message leaks internals: ${JSON.stringify(err)}`);
  }
  if (code === "internal" || code === "unknown") {
    assert.match(
      text,
      tolerableInternal,
      `${where}: the gateway answered ${code} (an unexpected exception on client input): ${JSON.stringify(err).slice(0, 500)}`,
    );
  }
  return { code: code as string, message: text };
}

/** Parses `bytes` as UTF-8 JSON, failing with `what` and a preview of the bytes. */
function parseJson(bytes: Uint8Array, what: string): unknown {
  const text = Buffer.from(bytes).toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    assert.fail(`${what} is not JSON: ${JSON.stringify(text.slice(0, 300))}`);
  }
}

/** Decodes one response message in `codec`, failing with a description when it does not decode. */
function decodeMessage(desc: DescMessage, codec: Codec, bytes: Uint8Array, where: string): Message {
  try {
    return codec === "json"
      ? fromJsonString(desc, Buffer.from(bytes).toString("utf8"))
      : fromBinary(desc, bytes);
  } catch (err) {
    assert.fail(`${where}: a ${desc.typeName} that does not decode (${String(err)})`);
  }
}

/**
 * Asserts `ans` is a proper Connect answer to a call of `method` in `codec` over HTTP/1.1, and
 * returns what it carried:
 * - unary: 200 with one decodable message, or the HTTP status of Connect's code mapping with a JSON
 *   error body `{code, message}`;
 * - server streaming: 200 with decodable messages and an end-of-stream envelope (whose error, if
 *   any, is proper), or a live stream cancelled while idle; or a unary-style error;
 * - bidi: 505 HTTP Version Not Supported (connect-es refuses full duplex over HTTP/1.1).
 */
export function checkConnectAnswer(method: DescMethod, codec: Codec, ans: ConnectAnswer): CheckedAnswer {
  const where = `${method.parent.typeName}/${method.name} (${codec})`;
  const preview = () => JSON.stringify(Buffer.from(ans.body).toString("utf8").slice(0, 300));
  if (method.methodKind === "bidi_streaming" || method.methodKind === "client_streaming") {
    // Client streaming works over HTTP/1.1 in principle, but the services have none; bidi is refused.
    assert.equal(method.methodKind, "bidi_streaming", `${where}: unexpected client streaming method`);
    assert.equal(ans.cutWhileIdle, false, `${where}: bidi over HTTP/1.1 stayed open`);
    assert.equal(ans.status, 505, `${where}: bidi over HTTP/1.1 answered ${ans.status}: ${preview()}`);
    return { messages: [], cutWhileIdle: false };
  }
  const streaming = method.methodKind === "server_streaming";
  if (ans.cutWhileIdle && ans.status === 0) {
    assert.ok(streaming, `${where}: a unary call sent no answer`);
    return { messages: [], cutWhileIdle: true };
  }
  if (ans.status !== 200) {
    assert.equal(ans.cutWhileIdle, false, `${where}: an error answer ${ans.status} never ended`);
    assert.match(
      ans.contentType,
      /^application\/json\b/,
      `${where}: HTTP ${ans.status} with content type "${ans.contentType}" (not a Connect error): ${preview()}`,
    );
    const error = assertProperError(parseJson(ans.body, `${where}: HTTP ${ans.status} body`), where);
    const code = codeFromString(error.code);
    assert.ok(code !== undefined);
    assert.equal(
      ans.status,
      codeToHttpStatus(code),
      `${where}: code ${error.code} sent with HTTP ${ans.status}, Connect maps it to ${codeToHttpStatus(code)}`,
    );
    return { messages: [], error, cutWhileIdle: false };
  }
  assert.equal(
    ans.contentType.split(";")[0],
    contentTypeOf(codec, streaming),
    `${where}: 200 with content type "${ans.contentType}": ${preview()}`,
  );
  if (!streaming) {
    return { messages: [decodeMessage(method.output, codec, ans.body, where)], cutWhileIdle: false };
  }
  const { frames, rest } = parseFrames(ans.body);
  const messages: Message[] = [];
  let error: WireError | undefined;
  let ended = false;
  for (const [i, frame] of frames.entries()) {
    assert.equal(ended, false, `${where}: envelope after the end of the stream`);
    if (frame.flags & endStreamFlag) {
      ended = true;
      const end = parseJson(frame.data, `${where}: end-of-stream envelope`) as { error?: unknown };
      assert.ok(end !== null && typeof end === "object", `${where}: end-of-stream is not an object`);
      if (end.error !== undefined) error = assertProperError(end.error, `${where} end-of-stream`);
      continue;
    }
    assert.equal(frame.flags, 0, `${where}: envelope ${i} has flags ${frame.flags}`);
    messages.push(decodeMessage(method.output, codec, frame.data, `${where} message ${i}`));
  }
  if (!ans.cutWhileIdle) {
    assert.equal(rest.length, 0, `${where}: ${rest.length} bytes of an incomplete envelope at the end`);
    assert.ok(ended, `${where}: the stream ended without an end-of-stream envelope`);
  }
  return { messages, error, cutWhileIdle: ans.cutWhileIdle };
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/** What the message generator may use. */
export interface GenContext {
  /** Task ids to pick often (existing tasks and a small shared pool), besides random ones. */
  readonly taskIds: readonly string[];
  /** An API key that works, offered to Authenticate now and then. */
  readonly apiKey: string;
  /** Keep well-known types in their JSON range (Timestamp years 1 to 9999), for JSON encoding. */
  readonly jsonSafe: boolean;
  /** Only well-formed strings (no lone surrogates), so the message decodes in either codec. */
  readonly wellFormed: boolean;
  /** Plausible values only (short text, small numbers, known enum values, small maps). */
  readonly plausible: boolean;
  /** Nested message levels to fill; deeper ones stay unset. */
  readonly maxDepth: number;
}

/** Odd strings worth trying in any string field. */
const oddStrings = [
  "",
  " ",
  "\t\n",
  "\u0000",
  "a\u0000b",
  "playbook",
  "PENDING",
  "running",
  "TASK_STATUS_COMPLETED",
  "TASK_PRIORITY_HIGH",
  "fail",
  "requeue",
  "completed",
  "failed",
  "null",
  "NaN",
  "-1",
  "18446744073709551616",
  "../../etc/passwd",
  "' OR 1=1 --",
  "%s%n%x",
  "{}",
  "[]",
  "🙂",
  "é",
  "\u202e",
  "\ufeff",
  "\uffff",
  "a".repeat(128),
  "a".repeat(129),
  "x=y,os=linux",
];

/** A string of about `bytes` UTF-8 bytes made of `unit`. */
const sized = (unit: string, bytes: number) =>
  unit.repeat(Math.max(1, Math.floor(bytes / Buffer.byteLength(unit))));

/**
 * Strings from empty to ~64 KiB (`huge`): ASCII, Unicode, control characters and, unless
 * `wellFormed`, lone surrogates (which JSON can carry as escapes but protobuf rejects as invalid
 * UTF-8, and binary encodes as U+FFFD).
 */
export function arbText(opts: { huge?: boolean; wellFormed?: boolean } = {}): fc.Arbitrary<string> {
  const { huge = true, wellFormed = false } = opts;
  const units = wellFormed ? ["a", "é", "🙂", "\u0000"] : ["a", "é", "🙂", "\u0000", "\ud800"];
  const arbs: fc.WeightedArbitrary<string>[] = [
    { weight: 5, arbitrary: fc.string({ maxLength: 24 }) },
    { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 12 }) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 12 }) },
    { weight: 3, arbitrary: fc.constantFrom(...oddStrings) },
  ];
  if (!wellFormed) {
    arbs.push({
      weight: 1,
      arbitrary: fc
        .array(fc.constantFrom("\ud800", "\udbff", "\udc00", "\udfff", "a"), { minLength: 1, maxLength: 4 })
        .map((parts) => parts.join("")),
    });
  }
  if (huge) {
    arbs.push({
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(...units), fc.integer({ min: 1024, max: 64 * 1024 + 64 }))
        .map(([unit, bytes]) => sized(unit, bytes)),
    });
  }
  return fc.oneof(...arbs);
}

const int32 = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: -2, max: 30 }) },
  { weight: 2, arbitrary: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) },
  { weight: 1, arbitrary: fc.constantFrom(-(2 ** 31), 2 ** 31 - 1, 604_800, 604_801, 1000, 1001, 64, 65) },
);
const uint32 = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 30 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 2 ** 32 - 1 }) },
);
const int64 = fc.oneof(
  { weight: 3, arbitrary: fc.bigInt({ min: -2n, max: 1000n }) },
  { weight: 2, arbitrary: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }) },
  { weight: 1, arbitrary: fc.constantFrom(-(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n, -(2n ** 53n) - 1n) },
);
const uint64 = fc.oneof(
  { weight: 3, arbitrary: fc.bigInt({ min: 0n, max: 1000n }) },
  { weight: 2, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
  { weight: 1, arbitrary: fc.constantFrom(2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 53n + 1n) },
);
const double = fc.oneof(
  fc.double(),
  fc.constantFrom(0, -0, 1, -1, 50, 100, 101, Number.NaN, Infinity, -Infinity, Number.MAX_VALUE, 5e-324),
);
const float = fc.oneof(fc.float(), fc.constantFrom(0, -1, 100, Number.NaN, Infinity, -Infinity));

/** Short, harmless text: what a well-behaved client would send. */
const plainText = fc.oneof(
  fc.string({ unit: fc.constantFrom(..."abcdefxyz0123456789-_."), minLength: 1, maxLength: 12 }),
  fc.constantFrom("playbook", "site.yml", "web1", "local", "ok"),
);

/** Random value of a scalar type (64-bit integers as bigint). */
function arbScalar(type: ScalarType, ctx: GenContext): fc.Arbitrary<unknown> {
  const p = ctx.plausible;
  switch (type) {
    case ScalarType.STRING:
      return p ? plainText : arbText({ wellFormed: ctx.wellFormed });
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: p ? 8 : 64 });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
      return p ? fc.constantFrom(0, 1, 2.5, 50, 100) : double;
    case ScalarType.FLOAT:
      return p ? fc.constantFrom(0, 1, 50, 100) : float;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return p ? fc.integer({ min: 0, max: 10 }) : int32;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return p ? fc.integer({ min: 0, max: 10 }) : uint32;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return p ? fc.bigInt({ min: 0n, max: 100n }) : int64;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return p ? fc.bigInt({ min: 0n, max: 100n }) : uint64;
  }
}

/** A random credential-shaped string: spk_/sps_ prefixes with random or well-formed tails. */
export function arbCredential(): fc.Arbitrary<string> {
  const hex = (n: number) =>
    fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: n, maxLength: n });
  const b64 = fc.string({
    unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
    minLength: 43,
    maxLength: 43,
  });
  return fc.oneof(
    fc
      .tuple(fc.constantFrom("spk_", "sps_", "SPK_", "spk", "sps__"), fc.string({ maxLength: 80 }))
      .map(([p, t]) => p + t),
    fc.tuple(hex(16), b64).map(([id, s]) => `spk_${id}_${s}`),
    fc.tuple(hex(24), b64).map(([id, s]) => `sps_${id}_${s}`),
  );
}

/**
 * Values the gateway gives meaning to, for well-known string fields by name. Plausible messages
 * use only these; wild ones mix them with arbitrary text.
 */
function hintedString(field: DescField, ctx: GenContext): fc.Arbitrary<string> | undefined {
  let meaningful: fc.Arbitrary<string>;
  switch (field.localName) {
    case "taskId":
    case "playId":
    case "idPrefix":
      meaningful = fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...ctx.taskIds) },
        { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(..."abc019._:-"), maxLength: 12 }) },
      );
      break;
    case "type":
      meaningful = fc.constantFrom("playbook", "shell", "task.status", "task.submitted", "daemon.hello");
      break;
    case "types":
      meaningful = fc.constantFrom("task.submitted", "task.status", "task.progress", "daemon.connected");
      break;
    case "status":
      meaningful = fc.constantFrom("PENDING", "running", "TASK_STATUS_CANCELED", "lost", "");
      break;
    case "onLost":
      meaningful = fc.constantFrom("", "fail", "requeue");
      break;
    case "scopes":
      meaningful = fc.constantFrom(...allScopes);
      break;
    case "apiKey":
      meaningful = fc.oneof(fc.constant(ctx.apiKey), arbCredential());
      break;
    case "token":
      meaningful = arbCredential();
      break;
    case "pageToken":
      meaningful = fc.oneof(
        fc.constant(""),
        fc
          .record({
            v: fc.constantFrom(1, 2, "1"),
            p: fc.oneof(fc.integer(), fc.double()),
            o: fc.string(),
            f: fc.string(),
          })
          .map((body) => Buffer.from(JSON.stringify(body)).toString("base64url")),
      );
      break;
    default:
      return undefined;
  }
  return ctx.plausible ? meaningful : fc.oneof(meaningful, arbText({ wellFormed: ctx.wellFormed }));
}

/** Enum values plausible messages favour: the outcomes ReportTaskResult accepts. */
const favouredEnumValues: Readonly<Record<string, readonly number[]>> = {
  "spage.core.TaskStatus": [3, 4, 5, 9],
};

/** Random value of one list element, map value or singular field of kind `kind`. */
function arbElement(
  kind: "scalar" | "enum" | "message",
  field: DescField,
  ctx: GenContext,
  depth: number,
): fc.Arbitrary<unknown> {
  if (kind === "scalar") {
    const scalar = (field as { scalar: ScalarType }).scalar;
    return (scalar === ScalarType.STRING ? hintedString(field, ctx) : undefined) ?? arbScalar(scalar, ctx);
  }
  if (kind === "enum") {
    const desc = (field as { enum: DescEnum }).enum;
    const values = desc.values.map((v) => v.number);
    const known = fc.constantFrom(...values);
    const favoured = favouredEnumValues[desc.typeName];
    return ctx.plausible
      ? favoured
        ? fc.oneof(known, fc.constantFrom(...favoured))
        : known
      : fc.oneof(
          { weight: 4, arbitrary: known },
          { weight: 1, arbitrary: fc.constantFrom(-1, values.length, 99, 2 ** 31 - 1, -(2 ** 31)) },
        );
  }
  const message = (field as { message: DescMessage }).message;
  return arbMessageInit(message, ctx, depth + 1);
}

/** Random value of a field, as `create()` takes it. */
function arbField(field: DescField, ctx: GenContext, depth: number): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case "scalar":
    case "enum":
    case "message":
      return arbElement(field.fieldKind, field, ctx, depth);
    case "list": {
      const el = arbElement(field.listKind, field, ctx, depth);
      if (ctx.plausible) return fc.array(el, { minLength: 1, maxLength: 3 });
      return fc.oneof(
        { weight: 4, arbitrary: fc.array(el, { maxLength: 4 }) },
        { weight: 1, arbitrary: fc.array(el, { minLength: 30, maxLength: 40 }) },
      );
    }
    case "map": {
      const key = field.mapKey === ScalarType.STRING ? undefined : arbScalar(field.mapKey, ctx).map(String);
      const value = arbElement(field.mapKind, field, ctx, depth);
      if (ctx.plausible) {
        return fc.dictionary(key ?? plainText, value, { minKeys: 1, maxKeys: 3, noNullPrototype: true });
      }
      const small = arbText({ huge: false, wellFormed: ctx.wellFormed });
      const smallValue = field.mapKind === "scalar" && field.scalar === ScalarType.STRING ? small : value;
      return fc.oneof(
        {
          weight: 4,
          arbitrary: fc.dictionary(key ?? arbText({ wellFormed: ctx.wellFormed }), value, {
            maxKeys: 4,
            noNullPrototype: true,
          }),
        },
        // Many keys: over the gateway's 64-entry bound now and then.
        {
          weight: 1,
          arbitrary: fc.dictionary(key ?? small, smallValue, {
            minKeys: 50,
            maxKeys: 90,
            noNullPrototype: true,
          }),
        },
      );
    }
  }
}

/** A Timestamp that JSON can carry (0001-01-01 to 9999-12-31). */
export const arbJsonTimestamp = fc.record({
  seconds: fc.bigInt({ min: -62_135_596_800n, max: 253_402_300_799n }),
  nanos: fc.integer({ min: 0, max: 999_999_999 }),
});

/**
 * Random init object of `desc`, built by walking its fields with reflection: every field is set or
 * left unset at random; nested messages below `ctx.maxDepth` stay unset. Timestamps stay in JSON's
 * range when `ctx.jsonSafe`; in binary, plausible messages still carry out-of-range ones half the
 * time (gRPC clients can send them).
 */
export function arbMessageInit(desc: DescMessage, ctx: GenContext, depth = 0): fc.Arbitrary<unknown> {
  if (depth > ctx.maxDepth) return fc.constant(undefined);
  if (desc.typeName === "google.protobuf.Timestamp") {
    if (ctx.jsonSafe) return arbJsonTimestamp;
    if (ctx.plausible)
      return fc.oneof(arbJsonTimestamp, arbMessageInit(desc, { ...ctx, plausible: false }, depth));
  }
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of desc.fields) {
    if (field.oneof) continue;
    model[field.localName] = fc.option(arbField(field, ctx, depth), {
      nil: undefined,
      freq: ctx.plausible ? 2 : 3,
    });
  }
  const oneofs: fc.Arbitrary<[string, unknown]>[] = desc.oneofs.map((oneof) =>
    fc
      .option(fc.constantFrom(...oneof.fields), { nil: undefined })
      .chain(
        (f): fc.Arbitrary<[string, unknown]> =>
          f === undefined
            ? fc.constant([oneof.localName, undefined])
            : arbField(f, ctx, depth).map((value) => [oneof.localName, { case: f.localName, value }]),
      ),
  );
  const cases: fc.Arbitrary<[string, unknown][]> =
    oneofs.length === 0 ? fc.constant([]) : fc.tuple(...oneofs).map((cs) => [...cs]);
  return fc.tuple(fc.record(model), cases).map(([fields, cs]) => {
    const init: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) init[k] = v;
    for (const [k, v] of cs) if (v !== undefined) init[k] = v;
    return init;
  });
}

/**
 * Random valid-shaped message of `desc`: half plausible (what a well-behaved client sends, so calls
 * pass validation and reach the code behind it), half wild (any value of each field's type).
 */
export function arbMessage(desc: DescMessage, ctx: Omit<GenContext, "plausible">): fc.Arbitrary<Message> {
  return fc
    .oneof(
      arbMessageInit(desc, { ...ctx, plausible: true }),
      arbMessageInit(desc, { ...ctx, plausible: false }),
    )
    .map((init) => create(desc, init as MessageInitShape<DescMessage>));
}

/** Encodes a message in `codec` (JSON with field and enum naming picked at random by `style`). */
export function encodeMessage(
  desc: DescMessage,
  msg: Message,
  codec: Codec,
  style: { enumAsInteger: boolean; useProtoFieldName: boolean } = {
    enumAsInteger: false,
    useProtoFieldName: false,
  },
): Uint8Array {
  if (codec === "proto") return toBinary(desc, msg);
  return Buffer.from(JSON.stringify(toJson(desc, msg, style)));
}

/** One byte-level mutation; positions are taken modulo the length when applied. */
export type ByteMutation =
  | { readonly kind: "flip"; readonly at: number; readonly bit: number }
  | { readonly kind: "set"; readonly at: number; readonly value: number }
  | { readonly kind: "insert"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: "delete"; readonly at: number; readonly count: number }
  | { readonly kind: "truncate"; readonly at: number };

/** Byte sequences that confuse protobuf and UTF-8 decoders. */
const nastyBytes: readonly number[][] = [
  [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // 11-byte varint
  [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], // field 1, length 4 GiB
  [0x12, 0x80, 0x80, 0x80, 0x80, 0x08], // field 2, length 2^31
  [0x0b], // start group field 1
  [0x0c], // end group field 1
  [0x0f], // wire type 7
  [0x00], // field 0
  [0xf8, 0xff, 0xff, 0xff, 0x0f], // field 2^29-1 varint... truncated
  [0x22, 0x03, 0x0a, 0x01], // map entry claiming more than it has
  [0xed, 0xa0, 0x80], // UTF-8 encoded lone surrogate
  [0xc3, 0x28], // invalid UTF-8 continuation
  [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
  [0xfe, 0xff],
];

/** Random byte mutations (1 to 5). */
export function arbByteMutations(): fc.Arbitrary<ByteMutation[]> {
  const at = fc.nat();
  const mutation: fc.Arbitrary<ByteMutation> = fc.oneof(
    fc.record({ kind: fc.constant("flip" as const), at, bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant("set" as const), at, value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({
      kind: fc.constant("insert" as const),
      at,
      bytes: fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 8 }),
        fc.constantFrom(...nastyBytes).map((b) => Uint8Array.from(b)),
      ),
    }),
    fc.record({ kind: fc.constant("delete" as const), at, count: fc.integer({ min: 1, max: 8 }) }),
    fc.record({ kind: fc.constant("truncate" as const), at }),
  );
  return fc.array(mutation, { minLength: 1, maxLength: 5 });
}

/** Applies byte mutations in order. */
export function mutateBytes(input: Uint8Array, mutations: readonly ByteMutation[]): Uint8Array {
  let bytes = Uint8Array.from(input);
  for (const m of mutations) {
    const at = m.at % (bytes.length + 1);
    switch (m.kind) {
      case "flip":
        if (at < bytes.length) bytes[at] = (bytes[at] ?? 0) ^ (1 << m.bit);
        break;
      case "set":
        if (at < bytes.length) bytes[at] = m.value;
        break;
      case "insert":
        bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
        break;
      case "delete":
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.count)]);
        break;
      case "truncate":
        bytes = bytes.slice(0, at);
        break;
    }
  }
  return bytes;
}

/** Raw JSON texts of the wrong type, range or shape for most fields. */
export function arbJunkJson(): fc.Arbitrary<string> {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        "null",
        "true",
        "false",
        "0",
        "-1",
        "1.5",
        "-0",
        "1e400",
        "-1e400",
        "18446744073709551616",
        "-9223372036854775809",
        "9007199254740993",
        "4294967296",
        "2147483648",
        "-2147483649",
        '"18446744073709551616"',
        '"-18446744073709551617"',
        '"99999999999999999999999999999"',
        '"1.5"',
        '"1e3"',
        '" 1"',
        '"0x10"',
        '"NaN"',
        '"Infinity"',
        '"-Infinity"',
        '"\\ud800"',
        '"\\udfff\\ud800x"',
        '"\\u0000"',
        '""',
        "[]",
        "{}",
        "[null]",
        '{"":""}',
        '{"a":null}',
        '{"a":1}',
        '"TASK_PRIORITY_HIGH"',
        '"TASK_STATUS_RUNNING"',
        '"LIST_ORDER_OLDEST_FIRST"',
        '"nope"',
        '"1970-01-01T00:00:00Z"',
        '"0000-01-01T00:00:00Z"',
        '"10000-01-01T00:00:00Z"',
        '"9999-12-31T23:59:59.999999999Z"',
        '"2024-02-30T25:61:61Z"',
        '"1970-01-01T00:00:00.1234567891Z"',
        '"2024-01-01T00:00:00+14:00"',
        '{"seconds":"1","nanos":2}',
        '"AAAA"',
        '"!!!"',
      ),
    },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 16 }).map((s) => JSON.stringify(s)) },
    { weight: 1, arbitrary: fc.bigInt().map((b) => (b % 2n === 0n ? b.toString() : `"${b}"`)) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((n) => "[".repeat(n) + "]".repeat(n)) },
    {
      weight: 1,
      arbitrary: fc.integer({ min: 1, max: 5_000 }).map((n) => `${'{"a":'.repeat(n)}1${"}".repeat(n)}`),
    },
    { weight: 1, arbitrary: arbText().map((s) => JSON.stringify(s)) },
  );
}

/** One structural mutation of a JSON request body. */
export type JsonMutation =
  | { readonly kind: "set"; readonly key: number; readonly value: string }
  | { readonly kind: "delete"; readonly key: number }
  | { readonly kind: "duplicate"; readonly key: number; readonly value: string }
  | { readonly kind: "unknown"; readonly name: string; readonly value: string }
  | { readonly kind: "inner"; readonly key: number; readonly name: string; readonly value: string }
  | { readonly kind: "whole"; readonly value: string };

/** Random structural JSON mutations (1 to 4). */
export function arbJsonMutations(): fc.Arbitrary<JsonMutation[]> {
  const key = fc.nat();
  const value = arbJunkJson();
  const mutation: fc.Arbitrary<JsonMutation> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant("set" as const), key, value }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), key }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("duplicate" as const), key, value }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("unknown" as const),
        name: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom("__proto__", "constructor", "@type")),
        value,
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("inner" as const),
        key,
        name: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom("__proto__", "seconds", "nanos")),
        value,
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("whole" as const), value }) },
  );
  return fc.array(mutation, { minLength: 1, maxLength: 4 });
}

/**
 * Applies structural mutations to the JSON form of `msg` and returns the body text. Keys are picked
 * among the fields present, every field's JSON and proto name, so unset fields get junk too.
 * Duplicate keys are kept as written (the text is assembled, not re-serialized).
 */
export function mutateJson(desc: DescMessage, msg: Message, mutations: readonly JsonMutation[]): string {
  const json = toJson(desc, msg) as JsonObject;
  const entries: [string, string][] = Object.entries(json).map(([k, v]) => [k, JSON.stringify(v)]);
  const names = [
    ...new Set([...entries.map(([k]) => k), ...desc.fields.flatMap((f) => [f.jsonName, f.name])]),
  ];
  let whole: string | undefined;
  for (const m of mutations) {
    if (m.kind === "whole") {
      whole = m.value;
      continue;
    }
    if (m.kind === "unknown") {
      entries.push([m.name, m.value]);
      continue;
    }
    if (names.length === 0) {
      entries.push(["x", "kind" in m && "value" in m ? m.value : "null"]);
      continue;
    }
    const name = names[m.key % names.length] ?? "";
    const at = entries.findIndex(([k]) => k === name);
    switch (m.kind) {
      case "set":
        if (at >= 0) entries[at] = [name, m.value];
        else entries.push([name, m.value]);
        break;
      case "delete":
        if (at >= 0) entries.splice(at, 1);
        break;
      case "duplicate":
        entries.push([name, m.value]);
        break;
      case "inner": {
        const inner = `{${JSON.stringify(m.name)}:${m.value}}`;
        if (at >= 0) {
          const old = entries[at]?.[1] ?? "";
          // Objects get one more key; anything else is replaced by an object.
          entries[at] = [
            name,
            old.startsWith("{") && old.length > 2
              ? `{${JSON.stringify(m.name)}:${m.value},${old.slice(1)}`
              : inner,
          ];
        } else entries.push([name, inner]);
        break;
      }
    }
  }
  return whole ?? `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(",")}}`;
}

// ---------------------------------------------------------------------------------------------
// Authorization headers
// ---------------------------------------------------------------------------------------------

/** Characters fetch accepts in a header value (printable ASCII, tab, Latin-1). */
const headerChar = fc
  .oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
    { weight: 1, arbitrary: fc.constantFrom(0x09, 0xa0, 0xe9, 0xff) },
  )
  .map((c) => String.fromCharCode(c));

/**
 * Random Authorization header values: random text, "Bearer " + random, credential-shaped strings
 * and near-misses of `goodKey` (wrong scheme, a flipped secret character, extra words). Some may
 * happen to be usable (e.g. "bearer <goodKey>"); `isUsableAuthorization` tells.
 */
export function arbAuthorization(goodKey: string): fc.Arbitrary<string> {
  const random = fc.string({ unit: headerChar, maxLength: 80 });
  return fc.oneof(
    random,
    random.map((s) => `Bearer ${s}`),
    arbCredential().map((c) => `Bearer ${c}`),
    fc.constantFrom("", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", `Basic ${goodKey}`, `Token ${goodKey}`),
    fc.constantFrom(
      `Bearer ${goodKey} extra`,
      `Bearer ${goodKey}${goodKey}`,
      `Bearer  "${goodKey}"`,
      `bearer ${goodKey}`,
    ),
    fc.tuple(fc.nat(), fc.constantFrom(..."ABCxyz019-_")).map(([at, c]) => {
      const i = 4 + (at % (goodKey.length - 4));
      return `Bearer ${goodKey.slice(0, i)}${c}${goodKey.slice(i + 1)}`;
    }),
  );
}

/** True when the gateway would accept `header` as carrying `goodKey` (see interceptors/auth.ts). */
export function isUsableAuthorization(header: string, goodKey: string): boolean {
  return /^Bearer\s+(\S+)\s*$/i.exec(header.trim())?.[1] === goodKey;
}
