/**
 * Hostile and malformed input against a real gateway: wrong content types, broken bodies and frames,
 * oversized messages and headers, unknown methods, garbage or split prefaces and stalled connections.
 * After every case the gateway must still answer a health check, and a task stored before the first
 * case must still be there after the last.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { EventEmitter } from "node:events";
import * as http2 from "node:http2";
import * as net from "node:net";
import { after, afterEach, before, describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { HealthStatusSchema } from "../../gen/spage/core/common_pb.js";
import { http2Preface } from "../src/listen.js";
import {
  grpcEnvelope,
  grpcMessageOf,
  grpcStatusOf,
  http1Post,
  http2Post,
  parseGrpcEnvelopes,
} from "./helpers/one-shot-http.js";
import {
  http2FrameType,
  openRawSocket,
  parseHttp2Frames,
  preview,
  splitFirstBytes,
} from "./helpers/raw-socket.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

/** Bound for "the server closes the connection" checks; the test server's headers timeout is 1000 ms. */
const closeBoundMs = 5000;
/** Request size limit of the server under test. */
const readMaxBytes = 2048;
const healthPath = "/spage.api.SpageAPI/HealthCheck";
const submitPath = "/spage.api.SpageAPI/SubmitTask";

/** Calls a unary RPC with Connect JSON over fetch; returns the HTTP status and the parsed body. */
async function connectJson(
  url: string,
  path: string,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(new URL(path, url), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  return { status: res.status, json: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** Resolves with `promise`, or rejects once `timeoutMs` have passed without it settling. */
async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: nothing within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves with the arguments of `emitter`'s next `event` (errors are not rejections), or fails after `timeoutMs`. */
function nextEvent(emitter: EventEmitter, event: string, timeoutMs: number): Promise<unknown[]> {
  let listener: ((...args: unknown[]) => void) | undefined;
  return withTimeout(
    new Promise<unknown[]>((resolve) => {
      listener = (...args) => resolve(args);
      emitter.once(event, listener);
    }),
    timeoutMs,
    `event "${event}"`,
  ).finally(() => {
    if (listener) emitter.removeListener(event, listener);
  });
}

/** Reads a whole HTTP/2 response (status and UTF-8 body) from a client stream. */
async function readHttp2Response(
  stream: http2.ClientHttp2Stream,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  let status = 0;
  let body = "";
  stream.setEncoding("utf8");
  stream.on("response", (h) => {
    status = Number(h[":status"]);
  });
  stream.on("data", (d: string) => {
    body += d;
  });
  const ended = new Promise<void>((resolve, reject) => {
    stream.once("end", resolve);
    stream.once("error", reject);
  });
  await withTimeout(ended, timeoutMs, "HTTP/2 response");
  return { status, body };
}

/** Asserts the gateway still answers a Connect JSON HealthCheck with 200. */
async function assertStillServes(server: TestServer): Promise<void> {
  const { status, json } = await connectJson(server.url, healthPath, {});
  assert.equal(status, 200, `HealthCheck after the case answered ${status}: ${JSON.stringify(json)}`);
  assert.equal(typeof json.status, "string");
}

/** Asserts a raw connection got exactly one `HTTP/1.1 <status>` answer and was then closed by the server. */
async function assertAnsweredAndClosed(port: number, input: Buffer | string, status: number): Promise<void> {
  const raw = await openRawSocket(port);
  try {
    raw.socket.write(input);
    const { received } = await raw.waitForClose(closeBoundMs);
    const text = preview(received, 4096);
    assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), `answer: ${JSON.stringify(text)}`);
    assert.equal(text.match(/HTTP\/1\.1 /g)?.length, 1, "exactly one response");
  } finally {
    raw.destroy();
  }
}

describe("hostile input", () => {
  let server: TestServer;
  const keptTaskId = "hostile-input-kept-1";

  before(async () => {
    server = await startTestServer(["--read-max-bytes", String(readMaxBytes)]);
    const { status, json } = await connectJson(server.url, submitPath, {
      taskId: keptTaskId,
      type: "playbook",
      payload: { playbook: "site.yml" },
    });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.taskId, keptTaskId);
  });

  afterEach(async () => {
    await assertStillServes(server);
  });

  after(async () => {
    try {
      const { status, json } = await connectJson(server.url, "/spage.api.SpageAPI/GetTaskStatus", {
        taskId: keptTaskId,
      });
      assert.equal(status, 200, JSON.stringify(json));
      const task = json.task as Record<string, unknown>;
      assert.equal(task.id, keptTaskId);
      assert.deepEqual(task.payload, { playbook: "site.yml" });
    } finally {
      await server.close();
    }
  });

  describe("wrong content type", () => {
    for (const contentType of ["text/xml", "text/plain"]) {
      it(`${contentType} to an RPC path over HTTP/1.1 is 415`, async () => {
        const res = await http1Post(server.url, healthPath, { "content-type": contentType }, "{}");
        assert.equal(res.status, 415, preview(res.body));
      });

      it(`${contentType} to an RPC path over HTTP/2 is 415`, async () => {
        const res = await http2Post(server.url, healthPath, { "content-type": contentType }, "{}");
        assert.equal(res.status, 415, preview(res.body));
      });
    }

    it("gRPC (application/grpc) over HTTP/1.1 is served by connect-es, with trailers", async () => {
      // connect-es serves gRPC over HTTP/1.1 (chunked body, grpc-status in HTTP/1.1 trailers): an
      // empty google.protobuf.Empty gets a real answer, not an error.
      const res = await http1Post(
        server.url,
        healthPath,
        { "content-type": "application/grpc", te: "trailers" },
        grpcEnvelope(new Uint8Array(0)),
      );
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-type"], "application/grpc+proto");
      assert.equal(grpcStatusOf(res), "0");
      const [only, ...rest] = parseGrpcEnvelopes(res.body);
      assert.ok(only, "one response message");
      assert.equal(rest.length, 0);
      assert.equal(only.flags, 0);
      assert.match(fromBinary(HealthStatusSchema, only.message).status, /^(healthy|degraded)$/);
    });

    it("a truncated gRPC frame over HTTP/1.1 ends with grpc-status 3 in the trailers", async () => {
      const res = await http1Post(
        server.url,
        healthPath,
        { "content-type": "application/grpc", te: "trailers" },
        Buffer.from([0, 0, 0, 0, 100, 1, 2, 3]),
      );
      assert.equal(res.status, 200);
      assert.equal(grpcStatusOf(res), String(Code.InvalidArgument));
      assert.equal(grpcMessageOf(res), "protocol error: incomplete envelope");
    });
  });

  describe("malformed bodies and frames", () => {
    it("invalid JSON with application/json is 400 invalid_argument", async () => {
      const { status, json } = await connectJson(server.url, healthPath, "{not json");
      assert.equal(status, 400);
      assert.equal(json.code, "invalid_argument");
      assert.match(String(json.message), /cannot decode message google\.protobuf\.Empty from JSON/);
    });

    it("JSON of the wrong shape is 400 invalid_argument", async () => {
      const { status, json } = await connectJson(server.url, submitPath, { type: 42, payload: [1, 2] });
      assert.equal(status, 400);
      assert.equal(json.code, "invalid_argument");
    });

    it("truncated protobuf with application/proto (Connect binary) is 500 internal", async () => {
      // Field 2 (type) declares 32 bytes, 1 follows. connect-es reports a binary parse failure as
      // Internal ("parse binary: premature EOF"), not InvalidArgument as it does for bad JSON; the
      // parse happens before the gateway's interceptors, so the gateway cannot remap it.
      const res = await http1Post(
        server.url,
        submitPath,
        { "content-type": "application/proto" },
        Buffer.from([0x12, 0x20, 0x61]),
      );
      assert.equal(res.status, 500, preview(res.body));
      const json = JSON.parse(res.body.toString("utf8")) as Record<string, unknown>;
      assert.equal(json.code, "internal");
      assert.equal(json.message, "parse binary: premature EOF");
    });

    it("a truncated gRPC frame over native gRPC (h2) ends with grpc-status 3", async () => {
      // The envelope header declares 100 bytes; 3 follow, then the stream ends.
      const res = await http2Post(
        server.url,
        healthPath,
        { "content-type": "application/grpc", te: "trailers" },
        Buffer.from([0, 0, 0, 0, 100, 1, 2, 3]),
      );
      assert.equal(res.status, 200);
      assert.equal(grpcStatusOf(res), String(Code.InvalidArgument));
      assert.equal(grpcMessageOf(res), "protocol error: incomplete envelope");
      assert.equal(res.body.length, 0);
    });

    it("a complete gRPC frame holding truncated protobuf ends with grpc-status 13", async () => {
      const res = await http2Post(
        server.url,
        submitPath,
        { "content-type": "application/grpc", te: "trailers" },
        grpcEnvelope(Buffer.from([0x12, 0x20, 0x61])),
      );
      assert.equal(res.status, 200);
      assert.equal(grpcStatusOf(res), String(Code.Internal));
      assert.equal(grpcMessageOf(res), "parse binary: premature EOF");
    });
  });

  describe(`oversized message (--read-max-bytes ${readMaxBytes})`, () => {
    const bigSubmit = { type: "playbook", payload: { big: "a".repeat(100 * 1024) } };

    it("Connect JSON: 429 resource_exhausted", async () => {
      const { status, json } = await connectJson(server.url, submitPath, bigSubmit);
      assert.equal(status, 429);
      assert.equal(json.code, "resource_exhausted");
      assert.match(String(json.message), /larger than configured readMaxBytes 2048/);
    });

    it("gRPC (connect-node transport): ResourceExhausted", async () => {
      const sessions = new Http2SessionManager(server.url);
      try {
        const api = createClient(
          SpageAPI,
          createGrpcTransport({ baseUrl: server.url, sessionManager: sessions }),
        );
        await assert.rejects(
          api.submitTask(bigSubmit, { signal: AbortSignal.timeout(5000) }),
          (err: unknown) => {
            const ce = ConnectError.from(err);
            assert.equal(ce.code, Code.ResourceExhausted, `${Code[ce.code]}: ${ce.rawMessage}`);
            assert.match(ce.rawMessage, /larger than configured readMaxBytes 2048/);
            return true;
          },
        );
        // The same connection still serves a normal call.
        const health = await api.healthCheck({}, { signal: AbortSignal.timeout(5000) });
        assert.match(health.status, /^(healthy|degraded)$/);
      } finally {
        sessions.abort();
      }
    });
  });

  describe("unknown method", () => {
    for (const path of ["/spage.api.SpageAPI/Nope", "/no.Such/Service"]) {
      it(`${path}: Connect over HTTP/1.1 is 404`, async () => {
        const { status } = await connectJson(server.url, path, {});
        assert.equal(status, 404);
      });

      it(`${path}: native gRPC over h2 is Trailers-Only grpc-status 12`, async () => {
        const res = await http2Post(
          server.url,
          path,
          { "content-type": "application/grpc", te: "trailers" },
          grpcEnvelope(new Uint8Array(0)),
        );
        assert.equal(res.status, 200);
        assert.equal(grpcStatusOf(res), "12");
        assert.match(grpcMessageOf(res) ?? "", /^unknown method /);
      });

      it(`${path}: a grpc-js client sees UNIMPLEMENTED (12)`, async () => {
        const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
        try {
          const err = await new Promise<grpc.ServiceError | null>((resolve) => {
            client.makeUnaryRequest(
              path,
              (b: Buffer) => b,
              (b: Buffer) => b,
              Buffer.alloc(0),
              { deadline: Date.now() + 5000 },
              (e) => resolve(e),
            );
          });
          assert.ok(err, "the call must fail");
          assert.equal(err.code, grpc.status.UNIMPLEMENTED, err.details);
        } finally {
          client.close();
        }
      });
    }
  });

  describe("garbage and split prefaces", () => {
    it("GARBAGE\\r\\n\\r\\n is answered HTTP/1.1 400 and closed", async () => {
      await assertAnsweredAndClosed(server.port, "GARBAGE\r\n\r\n", 400);
    });

    it("random bytes are answered HTTP/1.1 400 and closed", async () => {
      // A leading NUL can never start a method or the HTTP/2 preface.
      await assertAnsweredAndClosed(server.port, Buffer.concat([Buffer.from([0]), randomBytes(255)]), 400);
    });

    it("bytes that start like the HTTP/2 preface and then diverge are answered 400 and closed", async () => {
      await assertAnsweredAndClosed(server.port, "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 400);
    });

    it("a preface prefix and then silence is closed within the headers timeout", async () => {
      const raw = await openRawSocket(server.port);
      try {
        raw.socket.write(http2Preface.subarray(0, 12));
        const { received, elapsedMs } = await raw.waitForClose(closeBoundMs);
        assert.equal(received.length, 0, preview(received));
        assert.ok(elapsedMs < closeBoundMs);
      } finally {
        raw.destroy();
      }
    });

    it("a preface prefix and then EOF is closed", async () => {
      const raw = await openRawSocket(server.port);
      try {
        raw.socket.end(http2Preface.subarray(0, 3));
        const { received } = await raw.waitForClose(closeBoundMs);
        assert.equal(received.length, 0, preview(received));
      } finally {
        raw.destroy();
      }
    });

    for (const [name, splitAt] of [
      ["3 pieces", [5, 14, 24]],
      ["one byte per write", Array.from({ length: 24 }, (_, i) => i + 1)],
    ] as const) {
      it(`an HTTP/2 preface split into ${name} still gives a working connection`, async () => {
        const socket = net.connect({ host: "127.0.0.1", port: server.port, noDelay: true });
        await new Promise<void>((resolve, reject) => {
          socket.once("connect", resolve);
          socket.once("error", reject);
        });
        const session = http2.connect(server.url, {
          createConnection: () => splitFirstBytes(socket, splitAt, 10),
        });
        const closed = new Promise<void>((resolve) => session.once("close", resolve));
        try {
          session.on("error", () => {});
          const stream = session.request({
            ":method": "POST",
            ":path": healthPath,
            "content-type": "application/json",
          });
          stream.end("{}");
          const res = await readHttp2Response(stream, 5000);
          assert.equal(res.status, 200, res.body);
          assert.match((JSON.parse(res.body) as { status: string }).status, /^(healthy|degraded)$/);
        } finally {
          session.close();
          await closed;
          socket.destroy();
        }
      });
    }
  });

  describe("stalled connections", () => {
    it("half-sent HTTP/1.1 request headers: 408 and closed within the headers timeout", async () => {
      const raw = await openRawSocket(server.port);
      try {
        raw.socket.write(`POST ${healthPath} HTTP/1.1\r\nHost: x\r\n`);
        const { received, elapsedMs } = await raw.waitForClose(closeBoundMs);
        const text = preview(received);
        assert.match(text, /^HTTP\/1\.1 408 /, JSON.stringify(text));
        assert.ok(elapsedMs < closeBoundMs);
      } finally {
        raw.destroy();
      }
    });

    it("a connection that sends nothing is closed within the headers timeout, without an answer", async () => {
      const raw = await openRawSocket(server.port);
      try {
        const { received, elapsedMs } = await raw.waitForClose(closeBoundMs);
        assert.equal(received.length, 0, preview(received));
        assert.ok(elapsedMs < closeBoundMs);
      } finally {
        raw.destroy();
      }
    });
  });

  describe("oversized headers", () => {
    it("a 64 KiB header over HTTP/1.1 is answered 431 and closed", async () => {
      await assertAnsweredAndClosed(
        server.port,
        `POST ${healthPath} HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n` +
          "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        431,
      );
    });

    it("a 20 KiB header over HTTP/2 gets the stream reset with ENHANCE_YOUR_CALM", async () => {
      // Over the server's 16 KiB header list limit, under node's own client-side send limit. The
      // limit applies once the client has acknowledged the server's SETTINGS, so the request waits
      // for them (a request in the client's first flight is checked against node's 64 KiB default).
      const session = http2.connect(server.url);
      const closed = new Promise<void>((resolve) => session.once("close", resolve));
      try {
        session.on("error", () => {});
        await nextEvent(session, "remoteSettings", 5000);
        const stream = session.request({
          ":method": "POST",
          ":path": healthPath,
          "content-type": "application/json",
          "x-big": "a".repeat(20 * 1024),
        });
        let responded = false;
        stream.on("response", () => {
          responded = true;
        });
        stream.on("error", () => {});
        stream.resume();
        const streamClosed = nextEvent(stream, "close", 5000);
        stream.end("{}");
        await streamClosed;
        assert.equal(responded, false, "no response to an oversized header block");
        assert.equal(stream.rstCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      } finally {
        session.close();
        await closed;
      }
    });
  });
});

describe("idle HTTP/2 connections (--idle-timeout-ms 500)", () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer(["--idle-timeout-ms", "500"]);
  });

  afterEach(async () => {
    await assertStillServes(server);
  });

  after(async () => {
    await server.close();
  });

  it("a client that sends only the preface gets SETTINGS, then GOAWAY, then is closed", async () => {
    const raw = await openRawSocket(server.port);
    try {
      raw.socket.write(http2Preface);
      const { received, elapsedMs } = await raw.waitForClose(closeBoundMs);
      const types = parseHttp2Frames(received).map((f) => f.type);
      assert.equal(types[0], http2FrameType.settings, `frames: ${JSON.stringify(types)}`);
      assert.ok(types.includes(http2FrameType.goaway), `frames: ${JSON.stringify(types)}`);
      assert.ok(elapsedMs < closeBoundMs);
    } finally {
      raw.destroy();
    }
  });

  it("a header block too large to decode gets GOAWAY COMPRESSION_ERROR; the idle timeout frees the socket", async () => {
    // nghttp2 gives up on a >64 KiB header field with GOAWAY(COMPRESSION_ERROR), after which node's
    // server session neither closes nor reads the peer's FIN: only the listener's idle timeout
    // frees the server side of the connection (see the report on the default 300 s idle timeout).
    const serverSide = nextEvent(server.gateway.server, "connection", 5000);
    const session = http2.connect(server.url, { maxSendHeaderBlockLength: 1024 * 1024 });
    try {
      session.on("error", () => {});
      const goaway = nextEvent(session, "goaway", 5000);
      const stream = session.request({
        ":method": "POST",
        ":path": healthPath,
        "content-type": "application/json",
        "x-big": randomBytes(50 * 1024).toString("hex"),
      });
      stream.on("error", () => {});
      stream.resume();
      stream.end("{}");
      const [code] = await goaway;
      assert.equal(code, http2.constants.NGHTTP2_COMPRESSION_ERROR);
      const [socket] = (await serverSide) as [net.Socket];
      if (!socket.destroyed) await nextEvent(socket, "close", closeBoundMs);
    } finally {
      session.destroy();
    }
  });

  it("an HTTP/2 session that opens no stream is sent GOAWAY and closed", async () => {
    const session = http2.connect(server.url);
    try {
      session.on("error", () => {});
      const goaway = nextEvent(session, "goaway", closeBoundMs);
      await nextEvent(session, "close", closeBoundMs);
      const [code] = await goaway;
      assert.equal(code, http2.constants.NGHTTP2_NO_ERROR);
    } finally {
      session.destroy();
    }
  });
});
