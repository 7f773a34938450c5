/**
 * Shutdown of a gateway with long-lived streams open over every protocol it serves: native gRPC
 * (connect-node and grpc-js), Connect over HTTP/2 and HTTP/1.1, gRPC-Web over HTTP/1.1, plus a
 * quiet bidi StreamProgress. Shutdown must finish within its bound, end every watch stream with
 * UNAVAILABLE and stop accepting connections.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { describe, it } from "node:test";
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { SpageAPI, type WatchEventsRequest, WatchEventsRequestSchema } from "../../gen/spage/api/tasks_pb.js";
import {
  type Event,
  EventSchema,
  type ProgressUpdate,
  ProgressUpdateSchema,
} from "../../gen/spage/core/common_pb.js";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import { startTestServer } from "./helpers/test-server.js";

/** How long a stream may take to show its first message, or to end once shutdown has begun. */
const streamBoundMs = 5000;

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

/** A stream under observation: its first message, and how it ended (code and message). */
interface ObservedStream {
  readonly name: string;
  /** Resolves with the first message; rejects if the stream ends before sending one. */
  readonly first: Promise<unknown>;
  /** Resolves when the stream ends: `code` 0 for a clean end, else the RPC status code. */
  readonly ended: Promise<{ code: number; message: string }>;
}

/** Iterates a connect-es response stream and records its first message and its end. */
function observeConnectStream(name: string, responses: AsyncIterable<unknown>): ObservedStream {
  let onFirst: (m: unknown) => void = () => {};
  const firstMessage = new Promise<unknown>((resolve) => {
    onFirst = resolve;
  });
  const ended = (async () => {
    try {
      for await (const m of responses) onFirst(m);
      return { code: 0, message: "" };
    } catch (err) {
      const ce = ConnectError.from(err);
      return { code: ce.code as number, message: ce.rawMessage };
    }
  })();
  return { name, first: firstOrEnd(name, firstMessage, ended), ended };
}

/** The first message, or a rejection naming how the stream ended without one. */
function firstOrEnd(
  name: string,
  first: Promise<unknown>,
  ended: Promise<{ code: number; message: string }>,
): Promise<unknown> {
  return Promise.race([
    first,
    ended.then((end) => {
      throw new Error(`${name} ended before its first message: ${Code[end.code] ?? end.code} ${end.message}`);
    }),
  ]);
}

/** A grpc-js method definition whose (de)serialisers are protobuf-es toBinary/fromBinary. */
function grpcJsMethod<I extends DescMessage, O extends DescMessage>(
  path: string,
  input: I,
  output: O,
  streaming: { requestStream: boolean; responseStream: boolean },
): grpc.MethodDefinition<MessageShape<I>, MessageShape<O>> {
  return {
    path,
    ...streaming,
    requestSerialize: (m) => Buffer.from(toBinary(input, m)),
    requestDeserialize: (b) => fromBinary(input, b),
    responseSerialize: (m) => Buffer.from(toBinary(output, m)),
    responseDeserialize: (b) => fromBinary(output, b),
  };
}

/** The one method of SpageAPI the grpc-js client needs. */
interface GrpcJsWatchClient extends grpc.Client {
  WatchEvents(req: WatchEventsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<Event>;
}

const GrpcJsWatchClient = grpc.makeGenericClientConstructor(
  {
    WatchEvents: grpcJsMethod("/spage.api.SpageAPI/WatchEvents", WatchEventsRequestSchema, EventSchema, {
      requestStream: false,
      responseStream: true,
    }),
  },
  "SpageAPI",
);

/** Starts a grpc-js WatchEvents call and records its first message and its final status. */
function observeGrpcJsWatch(client: GrpcJsWatchClient): {
  stream: ObservedStream;
  call: grpc.ClientReadableStream<Event>;
} {
  const call = client.WatchEvents(create(WatchEventsRequestSchema, {}));
  const firstMessage = new Promise<unknown>((resolve) => call.once("data", resolve));
  // grpc-js emits 'error' for every non-OK status; 'status' always comes, and carries the code.
  call.on("error", () => {});
  const ended = new Promise<{ code: number; message: string }>((resolve) => {
    call.once("status", (status: grpc.StatusObject) =>
      resolve({ code: status.code, message: status.details }),
    );
  });
  return { stream: { name: "grpc-js", first: firstOrEnd("grpc-js", firstMessage, ended), ended }, call };
}

/** Resolves with the error of a TCP connect to 127.0.0.1:`port`; rejects if it connects. */
function connectError(port: number): Promise<NodeJS.ErrnoException> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      reject(new Error(`connected to port ${port} after shutdown`));
    });
    socket.once("error", resolve);
  });
}

describe("shutdown", () => {
  it("Shutdown with open streams of each protocol finishes within the bound", async (t) => {
    const server = await startTestServer();
    const { shutdownTimeoutMs } = server.config;
    // Everything the clients hold, released in `finally` so the test process can exit.
    const clientsDone = new AbortController();
    const h2ForGrpc = new Http2SessionManager(server.url);
    const h2ForConnect = new Http2SessionManager(server.url);
    const h1Agent = new http.Agent({ keepAlive: true });
    const grpcJs = new GrpcJsWatchClient(
      `127.0.0.1:${server.port}`,
      grpc.credentials.createInsecure(),
    ) as unknown as GrpcJsWatchClient;
    let grpcJsCall: grpc.ClientReadableStream<Event> | undefined;
    try {
      const grpcTransport = createGrpcTransport({ baseUrl: server.url, sessionManager: h2ForGrpc });
      const api = createClient(SpageAPI, grpcTransport);
      const submitted = await api.submitTask(
        { type: "playbook", payload: { playbook: "site.yml" } },
        { signal: AbortSignal.timeout(streamBoundMs) },
      );

      const transports: Record<string, Transport> = {
        "gRPC (connect-node, h2)": grpcTransport,
        "Connect (h2)": createConnectTransport({
          baseUrl: server.url,
          httpVersion: "2",
          sessionManager: h2ForConnect,
        }),
        "Connect JSON (HTTP/1.1)": createConnectTransport({
          baseUrl: server.url,
          httpVersion: "1.1",
          nodeOptions: { agent: h1Agent },
        }),
        "gRPC-Web (HTTP/1.1)": createGrpcWebTransport({
          baseUrl: server.url,
          httpVersion: "1.1",
          nodeOptions: { agent: h1Agent },
        }),
      };
      const watches: ObservedStream[] = Object.entries(transports).map(([name, transport]) => {
        const client: Client<typeof SpageAPI> = createClient(SpageAPI, transport);
        return observeConnectStream(name, client.watchEvents({}, { signal: clientsDone.signal }));
      });
      const grpcJsWatch = observeGrpcJsWatch(grpcJs);
      grpcJsCall = grpcJsWatch.call;
      watches.push(grpcJsWatch.stream);

      // A bidi progress stream that reports once, gets its ack, then stays open and quiet.
      const exec = createClient(SpageExecution, grpcTransport);
      async function* oneUpdateThenWait(): AsyncGenerator<ProgressUpdate> {
        yield create(ProgressUpdateSchema, { taskId: submitted.taskId, progress: 10, message: "started" });
        await new Promise<void>((resolve) => {
          if (clientsDone.signal.aborted) resolve();
          else clientsDone.signal.addEventListener("abort", () => resolve(), { once: true });
        });
      }
      const progress = observeConnectStream(
        "StreamProgress (gRPC, h2)",
        exec.streamProgress(oneUpdateThenWait(), { signal: clientsDone.signal }),
      );

      for (const w of watches) {
        const ev = (await withTimeout(w.first, streamBoundMs, `${w.name}: first event`)) as Event;
        assert.equal(ev.type, "task.submitted", w.name);
      }
      const ack = (await withTimeout(progress.first, streamBoundMs, "StreamProgress ack")) as ProgressUpdate;
      assert.equal(ack.metadata.ack, "true", JSON.stringify(ack.metadata));

      const started = performance.now();
      await withTimeout(server.gateway.shutdown(), shutdownTimeoutMs + 3000, "shutdown");
      const shutdownMs = performance.now() - started;
      t.diagnostic(`shutdown took ${Math.round(shutdownMs)} ms (shutdownTimeoutMs ${shutdownTimeoutMs})`);

      for (const w of watches) {
        const end = await withTimeout(w.ended, streamBoundMs, `${w.name}: end`);
        assert.equal(end.code, Code.Unavailable, `${w.name} ended with ${Code[end.code]}: ${end.message}`);
        assert.match(end.message, /shutting down/, w.name);
      }

      // The quiet bidi stream's handler stops waiting for the next update when the grace period
      // ends, so the core is told UNAVAILABLE (not a cut connection).
      const progressEnd = await withTimeout(progress.ended, streamBoundMs, "StreamProgress end");
      assert.equal(
        progressEnd.code,
        Code.Unavailable,
        `StreamProgress ended with ${Code[progressEnd.code]}: ${progressEnd.message}`,
      );
      assert.match(progressEnd.message, /shutting down/);

      const refused = await withTimeout(connectError(server.port), streamBoundMs, "connect after shutdown");
      assert.equal(refused.code, "ECONNREFUSED");
    } finally {
      clientsDone.abort();
      grpcJsCall?.cancel();
      grpcJs.close();
      h2ForGrpc.abort();
      h2ForConnect.abort();
      h1Agent.destroy();
      // Idempotent: a no-op after the shutdown above, a clean stop if the test failed before it.
      await server.gateway.shutdown();
    }
  });
});
