/**
 * Differential scenarios about the wire around a valid message: every form of deadline header
 * (grpc-timeout in each unit, invalid, over --max-timeout-ms; connect-timeout-ms likewise),
 * compressed requests (gzip, br, unsupported encodings, a compressed flag without an encoding,
 * bodies that do not decompress, a gzip bomb) and request size limits decided from the envelope
 * header or the Content-Length, at the limit and one byte over it.
 */

import { brotliCompressSync, gzipSync } from "node:zlib";
import type { DescMethod } from "@bufbuild/protobuf";
import { SpageAPI } from "../../../gen/spage/api/tasks_pb.js";
import { knownTaskId } from "./differential-fixtures.js";
import {
  binaryInput,
  envelope,
  type Protocol,
  pathOf,
  rawCall,
  type Scenario,
  scenario,
  unaryCall,
} from "./differential-scenario.js";

/** --read-max-bytes of the gateways under test. */
export const readMaxBytes = 4096;
/** --max-timeout-ms of the gateways under test. */
export const maxTimeoutMs = 60_000;

const api = SpageAPI.method;

const health = (p: Exclude<Protocol, "http">, headers: Record<string, string>) =>
  unaryCall(p, api.healthCheck, {}, headers);

/**
 * grpc-timeout: an integer of 1 to 8 digits and a unit. A deadline already passed (0n) is included:
 * Connect's handler does not enforce it for a unary implementation that does not watch its signal
 * (every one here answers OK), and a fast path must not answer differently.
 */
const grpcTimeouts: readonly (readonly [string, string])[] = [
  ["1H", "1 hour (over --max-timeout-ms)"],
  ["1M", "1 minute (= --max-timeout-ms)"],
  ["30S", "seconds"],
  ["5000m", "milliseconds"],
  ["5000000u", "microseconds"],
  ["99999999n", "nanoseconds (just under 100 ms)"],
  ["0n", "zero (already expired)"],
  ["61S", "over --max-timeout-ms"],
  ["123456789S", "9 digits: invalid"],
  ["10s", "lower-case s: invalid unit"],
  ["-1S", "negative: invalid"],
  ["1.5S", "fraction: invalid"],
  ["soon", "not a number: invalid"],
];

const connectTimeouts: readonly (readonly [string, string])[] = [
  ["5000", "valid"],
  ["0", "zero (already expired)"],
  ["60001", "over --max-timeout-ms"],
  ["12345678901", "11 digits: invalid"],
  ["-5", "negative: invalid"],
  ["5s", "with a unit: invalid"],
];

const timeouts: Scenario[] = [
  ...grpcTimeouts.map(([value, what]) =>
    scenario("grpc", "h2", `grpc-timeout ${value}, ${what}`, {
      request: health("grpc", { "grpc-timeout": value }),
    }),
  ),
  scenario("grpc", "h1", "grpc-timeout 30S", { request: health("grpc", { "grpc-timeout": "30S" }) }),
  scenario("grpc", "h1", "grpc-timeout 7x, invalid", { request: health("grpc", { "grpc-timeout": "7x" }) }),
  scenario("grpc-web", "h1", "grpc-timeout 30S", { request: health("grpc-web", { "grpc-timeout": "30S" }) }),
  scenario("grpc-web", "h2", "grpc-timeout 2H, over --max-timeout-ms", {
    request: health("grpc-web", { "grpc-timeout": "2H" }),
  }),
  ...connectTimeouts.map(([value, what]) =>
    scenario("connect-json", "h2", `connect-timeout-ms ${value}, ${what}`, {
      request: health("connect-json", { "connect-timeout-ms": value }),
    }),
  ),
  scenario("connect-proto", "h1", "connect-timeout-ms 5000", {
    request: health("connect-proto", { "connect-timeout-ms": "5000" }),
  }),
  scenario("connect-proto", "h1", "connect-timeout-ms abc, invalid", {
    request: health("connect-proto", { "connect-timeout-ms": "abc" }),
  }),
];

const getKnown = { taskId: knownTaskId };
const knownBinary = binaryInput(api.getTaskStatus, getKnown);
const knownJson = Buffer.from(JSON.stringify(getKnown));
const getPath = pathOf(api.getTaskStatus);

const compression: Scenario[] = [
  ...(
    [
      ["grpc", "h2"],
      ["grpc", "h1"],
      ["grpc-web", "h2"],
    ] as const
  ).map(([p, t]) =>
    scenario(p, t, "request compressed with gzip", {
      request: rawCall(p, getPath, envelope(gzipSync(knownBinary), 1), { "grpc-encoding": "gzip" }),
    }),
  ),
  scenario("grpc", "h2", "request compressed with br", {
    request: rawCall("grpc", getPath, envelope(brotliCompressSync(knownBinary), 1), {
      "grpc-encoding": "br",
    }),
  }),
  scenario("grpc", "h2", "grpc-encoding gzip but the message not compressed (flag 0)", {
    request: rawCall("grpc", getPath, envelope(knownBinary), { "grpc-encoding": "gzip" }),
  }),
  scenario("grpc", "h2", "compressed flag without grpc-encoding", {
    request: rawCall("grpc", getPath, envelope(gzipSync(knownBinary), 1)),
  }),
  scenario("grpc-web", "h1", "compressed flag without grpc-encoding", {
    request: rawCall("grpc-web", getPath, envelope(gzipSync(knownBinary), 1)),
  }),
  scenario("grpc", "h2", "grpc-encoding snappy (unsupported)", {
    request: rawCall("grpc", getPath, envelope(knownBinary, 1), { "grpc-encoding": "snappy" }),
  }),
  scenario("grpc", "h2", "grpc-encoding gzip with a message that is not gzip", {
    request: rawCall("grpc", getPath, envelope(knownBinary, 1), { "grpc-encoding": "gzip" }),
  }),
  scenario("connect-json", "h1", "request compressed with gzip (content-encoding)", {
    request: rawCall("connect-json", getPath, gzipSync(knownJson), { "content-encoding": "gzip" }),
  }),
  scenario("connect-proto", "h2", "request compressed with gzip (content-encoding)", {
    request: rawCall("connect-proto", getPath, gzipSync(knownBinary), { "content-encoding": "gzip" }),
  }),
  scenario("connect-json", "h2", "request compressed with br (content-encoding)", {
    request: rawCall("connect-json", getPath, brotliCompressSync(knownJson), { "content-encoding": "br" }),
  }),
  scenario("connect-json", "h1", "content-encoding deflate (unsupported)", {
    request: rawCall("connect-json", getPath, knownJson, { "content-encoding": "deflate" }),
  }),
  scenario("connect-json", "h1", "content-encoding gzip with a body that is not gzip", {
    request: rawCall("connect-json", getPath, knownJson, { "content-encoding": "gzip" }),
  }),
  scenario("connect-json", "h1", "gzip bomb: 30 bytes on the wire, over --read-max-bytes inflated", {
    request: rawCall(
      "connect-json",
      getPath,
      gzipSync(JSON.stringify({ taskId: knownTaskId, pad: " ".repeat(20 * readMaxBytes) })),
      { "content-encoding": "gzip" },
    ),
  }),
  scenario("grpc", "h2", "gzip bomb: small envelope, over --read-max-bytes inflated", {
    request: rawCall("grpc", getPath, envelope(gzipSync(Buffer.alloc(20 * readMaxBytes)), 1), {
      "grpc-encoding": "gzip",
    }),
  }),
];

/** A SubmitTask whose binary encoding is exactly `size` bytes (its payload padded). */
function submitOfSize(method: DescMethod, taskId: string, size: number): Uint8Array {
  for (let pad = Math.max(0, size - 64); pad <= size; pad++) {
    const bytes = binaryInput(method, { taskId, type: "playbook", payload: { pad: "x".repeat(pad) } });
    if (bytes.length === size) return bytes;
  }
  throw new Error(`no SubmitTask of exactly ${size} bytes`);
}

const atLimit = submitOfSize(api.submitTask, "diff-at-limit", readMaxBytes);
const overLimit = submitOfSize(api.submitTask, "diff-over-limit", readMaxBytes + 1);
const bigJson = Buffer.from(JSON.stringify({ type: "playbook", payload: { pad: "x".repeat(100 * 1024) } }));
const submitPath = pathOf(api.submitTask);
const healthAfter = unaryCall("grpc", api.healthCheck, {});

const limits: Scenario[] = [
  // The control for the follow-ups below: a kept-alive connection is reused after a normal call.
  scenario("connect-json", "h1", "two calls on one kept-alive connection", {
    request: unaryCall("connect-json", api.getTaskStatus, { taskId: knownTaskId }),
    followUp: unaryCall("connect-json", api.healthCheck, {}),
  }),
  scenario("grpc", "h2", `message of exactly --read-max-bytes (${readMaxBytes})`, {
    request: rawCall("grpc", submitPath, envelope(atLimit)),
  }),
  scenario("grpc", "h2", "message one byte over --read-max-bytes", {
    request: rawCall("grpc", submitPath, envelope(overLimit)),
  }),
  scenario(
    "connect-proto",
    "h1",
    "message one byte over --read-max-bytes, then another call on the same connection",
    {
      request: rawCall("connect-proto", submitPath, overLimit),
      followUp: unaryCall("connect-proto", api.healthCheck, {}),
    },
  ),
  scenario("grpc", "h2", "100 KiB message, then another call on the same session", {
    request: rawCall("grpc", submitPath, envelope(Buffer.alloc(100 * 1024))),
    followUp: healthAfter,
  }),
  scenario("grpc", "h1", "100 KiB message, then another call on the same connection", {
    request: rawCall("grpc", submitPath, envelope(Buffer.alloc(100 * 1024))),
    followUp: healthAfter,
  }),
  scenario("grpc-web", "h2", "100 KiB message, then another call on the same session", {
    request: rawCall("grpc-web", submitPath, envelope(Buffer.alloc(100 * 1024))),
    followUp: unaryCall("grpc-web", api.healthCheck, {}),
  }),
  scenario("grpc", "h2", "envelope header declares 1 MiB, 10 bytes follow", {
    request: rawCall("grpc", submitPath, envelope(Buffer.alloc(10), 0, 1024 * 1024)),
  }),
  scenario("connect-json", "h2", "100 KiB JSON body, then another call on the same session", {
    request: rawCall("connect-json", submitPath, bigJson),
    followUp: unaryCall("connect-json", api.healthCheck, {}),
  }),
  scenario(
    "connect-json",
    "h1",
    "100 KiB JSON body with Content-Length, then another call on the same connection",
    {
      request: rawCall("connect-json", submitPath, bigJson),
      followUp: unaryCall("connect-json", api.healthCheck, {}),
    },
  ),
  scenario("connect-json", "h1", "100 KiB JSON body, chunked (no Content-Length)", {
    request: rawCall("connect-json", submitPath, bigJson, { "transfer-encoding": "chunked" }),
  }),
];

/** Scenarios about deadlines, compression and size limits (see the file comment). */
export const wireScenarios: readonly Scenario[] = [...timeouts, ...compression, ...limits];
