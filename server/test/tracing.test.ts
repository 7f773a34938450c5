/**
 * OpenTelemetry tracing against an in-process OTLP/HTTP receiver, on SQLite and on PostgreSQL: a
 * real gateway started with --otel-endpoint, real clients of each protocol sending `traceparent`.
 *
 * - Each call's RPC span keeps the caller's trace id, has the header's span as its parent, and
 *   names the protocol, method, code and task; the store transaction it caused is its child.
 * - An error call's span has status ERROR and the code.
 * - The submit's traceparent reaches a daemon in task.assigned (StreamEvents), and a process a real
 *   agent runs sees it as TRACEPARENT.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { context, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import {
  type GetTaskStatusRequest,
  GetTaskStatusRequestSchema,
  GetTaskStatusResponseSchema,
  SpageAPI,
  type SubmitTaskRequest,
  SubmitTaskRequestSchema,
  SubmitTaskResponseSchema,
} from "../../gen/spage/api/tasks_pb.js";
import { TaskPriority } from "../../gen/spage/core/common_pb.js";
import { shellQuote } from "../src/agent/command-template.js";
import { openPostgresStore } from "../src/store/postgres/postgres-store.js";
import { Cleanup, tempDir, waitForFile } from "./helpers/agent-harness.js";
import { startAgentProcess } from "./helpers/agent-process.js";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./helpers/otlp-receiver.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";
import { TestDaemon } from "./helpers/test-daemon.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

/** A caller's trace context: a fresh trace id and the caller's own span id. */
function callerContext(): { traceId: string; spanId: string; header: string } {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

const withHeader =
  (name: string, value: () => string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set(name, value());
    return next(req);
  };

/** A SubmitTask and a GetTaskStatus by some client, each sent with `traceparent`. */
interface TracedClient {
  readonly protocol: string;
  submit(traceparent: string): Promise<string>;
  /** Resolves with the error's code name for an unknown task. */
  getUnknown(traceparent: string): Promise<void>;
  close(): void;
}

function connectClient(
  protocol: string,
  make: (i: Interceptor[]) => Transport,
  close: () => void = () => {},
): TracedClient {
  let header = "";
  const api: Client<typeof SpageAPI> = createClient(
    SpageAPI,
    make([withHeader("traceparent", () => header)]),
  );
  return {
    protocol,
    async submit(tp) {
      header = tp;
      return (await api.submitTask({ type: "job" })).taskId;
    },
    async getUnknown(tp) {
      header = tp;
      await api.getTaskStatus({ taskId: "no-such-task" }).then(
        () => assert.fail("GetTaskStatus of an unknown task succeeded"),
        () => undefined,
      );
    },
    close,
  };
}

function grpcJsClient(url: string): TracedClient {
  const client = new grpc.Client(new URL(url).host, grpc.credentials.createInsecure());
  const unary = <I, O>(path: string, enc: (i: I) => Buffer, dec: (b: Buffer) => O, req: I, tp: string) =>
    new Promise<O>((resolve, reject) => {
      const md = new grpc.Metadata();
      md.set("traceparent", tp);
      client.makeUnaryRequest(path, enc, dec, req, md, { deadline: Date.now() + 5000 }, (err, res) =>
        err ? reject(err) : resolve(res as O),
      );
    });
  return {
    protocol: "grpc",
    async submit(tp) {
      const res = await unary(
        "/spage.api.SpageAPI/SubmitTask",
        (m: SubmitTaskRequest) => Buffer.from(toBinary(SubmitTaskRequestSchema, m)),
        (b) => fromBinary(SubmitTaskResponseSchema, b),
        create(SubmitTaskRequestSchema, { type: "job" }),
        tp,
      );
      return res.taskId;
    },
    async getUnknown(tp) {
      await unary(
        "/spage.api.SpageAPI/GetTaskStatus",
        (m: GetTaskStatusRequest) => Buffer.from(toBinary(GetTaskStatusRequestSchema, m)),
        (b) => fromBinary(GetTaskStatusResponseSchema, b),
        create(GetTaskStatusRequestSchema, { taskId: "no-such-task" }),
        tp,
      ).then(
        () => assert.fail("GetTaskStatus of an unknown task succeeded"),
        (err: grpc.ServiceError) => assert.equal(err.code, grpc.status.NOT_FOUND),
      );
    },
    close: () => client.close(),
  };
}

function fetchClient(url: string): TracedClient {
  const post = (method: string, body: unknown, tp: string) =>
    fetch(`${url}/spage.api.SpageAPI/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", traceparent: tp },
      body: JSON.stringify(body),
    });
  return {
    protocol: "connect+json",
    async submit(tp) {
      const res = await post("SubmitTask", { type: "job" }, tp);
      assert.equal(res.status, 200);
      return ((await res.json()) as { taskId: string }).taskId;
    },
    async getUnknown(tp) {
      const res = await post("GetTaskStatus", { taskId: "no-such-task" }, tp);
      assert.equal(res.status, 404);
      await res.arrayBuffer();
    },
    close() {},
  };
}

function everyClient(url: string): TracedClient[] {
  const sessionManager = new Http2SessionManager(url);
  return [
    grpcJsClient(url),
    connectClient("grpc-web", (interceptors) =>
      createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", interceptors }),
    ),
    connectClient(
      "connect+proto",
      (interceptors) =>
        createConnectTransport({
          baseUrl: url,
          httpVersion: "2",
          useBinaryFormat: true,
          sessionManager,
          interceptors,
        }),
      () => sessionManager.abort(),
    ),
    connectClient("connect+json", (interceptors) =>
      createConnectTransport({ baseUrl: url, httpVersion: "1.1", useBinaryFormat: false, interceptors }),
    ),
    fetchClient(url),
  ];
}

/** The RPC span of `method` in `traceId`, once the gateway has sent it. */
async function rpcSpan(server: TestServer, rx: OtlpReceiver, traceId: string, method: string) {
  await server.gateway.tracing?.forceFlush();
  return rx.waitFor((s) => s.traceId === traceId && s.name === `spage.api.SpageAPI/${method}`);
}

/** Each store, and on SQLite also Connect's own handler serving the unary calls the fast path serves. */
const setups = [
  { label: "SQLite", backend: "sqlite", flags: [] },
  { label: "SQLite, stock Connect (--no-fast-path)", backend: "sqlite", flags: ["--no-fast-path"] },
  { label: "PostgreSQL", backend: "postgresql", flags: [] },
] as const;

for (const { label, backend, flags } of setups) {
  describe(`tracing on ${label}`, () => {
    let rx: OtlpReceiver;
    let server: TestServer;
    let schema = "";

    before(async () => {
      rx = await startOtlpReceiver();
      const args = ["--otel-endpoint", rx.url, ...flags];
      if (backend === "postgresql") {
        schema = freshSchemaName();
        server = await startTestServer(args, {
          store: await openPostgresStore({ url: testDatabaseUrl, schema }),
        });
      } else {
        server = await startTestServer(args);
      }
    });
    after(async () => {
      await server?.close();
      await rx?.close();
      if (schema) await dropSchema(schema);
    });

    it("a span per call on every protocol, parented on traceparent, with its store transaction as a child", async () => {
      for (const client of everyClient(server.url)) {
        try {
          const caller = callerContext();
          const taskId = await client.submit(caller.header);
          const span = await rpcSpan(server, rx, caller.traceId, "SubmitTask");
          const what = `${client.protocol}: ${JSON.stringify(span)}`;
          assert.equal(span.parentSpanId, caller.spanId, what);
          assert.equal(span.kind, 2, `SERVER kind; ${what}`);
          assert.equal(span.serviceName, "spage-gateway", what);
          assert.equal(span.attributes["spage.protocol"], client.protocol, what);
          assert.equal(
            span.attributes["rpc.system"],
            client.protocol.startsWith("grpc") ? "grpc" : "connect_rpc",
          );
          assert.equal(span.attributes["rpc.service"], "spage.api.SpageAPI");
          assert.equal(span.attributes["rpc.method"], "SubmitTask");
          assert.equal(span.attributes["spage.task_id"], taskId, what);
          assert.equal(span.attributes["spage.code"], "ok", what);
          if (client.protocol.startsWith("grpc"))
            assert.equal(span.attributes["rpc.grpc.status_code"], 0, what);
          assert.notEqual(span.status.code, 2, what);
          const tx = await rx.waitFor(
            (s) => s.name === "store.transaction" && s.parentSpanId === span.spanId,
          );
          assert.equal(tx.traceId, caller.traceId);
          assert.equal(tx.attributes["db.system"], backend);
          assert.match(String(tx.attributes["db.operation.name"]), /createTask/);
        } finally {
          client.close();
        }
      }
    });

    it("an error call's span has status ERROR and the code", async () => {
      for (const client of everyClient(server.url)) {
        try {
          const caller = callerContext();
          await client.getUnknown(caller.header);
          const span = await rpcSpan(server, rx, caller.traceId, "GetTaskStatus");
          const what = `${client.protocol}: ${JSON.stringify(span)}`;
          assert.equal(span.parentSpanId, caller.spanId, what);
          assert.equal(span.status.code, 2, `status ERROR; ${what}`);
          assert.equal(span.attributes["spage.code"], "not_found", what);
          assert.equal(span.attributes["spage.task_id"], "no-such-task", what);
          if (client.protocol.startsWith("grpc"))
            assert.equal(span.attributes["rpc.grpc.status_code"], 5, what);
          else assert.equal(span.attributes["rpc.connect_rpc.error_code"], "not_found", what);
        } finally {
          client.close();
        }
      }
    });

    it("a group-commit batch's span: the first call's span is its parent, the others are linked", async () => {
      const tracing = server.gateway.tracing;
      assert.ok(tracing);
      const calls = ["a", "b", "c"].map((n) => tracing.tracer.startSpan(`caller ${n}`));
      // Submitted in one turn of the event loop, so writes share transactions.
      await Promise.all(
        calls.map((span) =>
          context.with(trace.setSpan(ROOT_CONTEXT, span), () =>
            server.gateway.services.deps.tasks.submit({
              taskId: "",
              type: "job",
              priority: TaskPriority.NORMAL,
              payload: {},
              metadata: {},
            }),
          ),
        ),
      );
      for (const span of calls) span.end();
      await tracing.forceFlush();
      const ids = new Set(calls.map((c) => c.spanContext().spanId));
      const shared = await rx.waitFor(
        (s) => s.name === "store.transaction" && ids.has(s.parentSpanId) && s.links.length > 0,
      );
      assert.ok(Number(shared.attributes["spage.store.writes"]) >= 2, JSON.stringify(shared));
      for (const link of shared.links) assert.ok(ids.has(link.spanId) && link.spanId !== shared.parentSpanId);
      // Every call's trace reaches a transaction: as its parent or through a link.
      const reached = new Set(
        rx.spans
          .filter((s) => s.name === "store.transaction")
          .flatMap((s) => [s.parentSpanId, ...s.links.map((l) => l.spanId)]),
      );
      for (const id of ids) assert.ok(reached.has(id), `call span ${id} reaches no transaction`);
    });

    it("a server stream's span lasts until the stream ends, with its parent from traceparent", async () => {
      const caller = callerContext();
      const sessionManager = new Http2SessionManager(server.url);
      const api = createClient(
        SpageAPI,
        createGrpcTransport({
          baseUrl: server.url,
          sessionManager,
          interceptors: [withHeader("traceparent", () => caller.header)],
        }),
      );
      const ac = new AbortController();
      const deadline = setTimeout(() => ac.abort(), 10_000);
      try {
        for await (const ev of api.watchEvents({ afterSequence: 0n }, { signal: ac.signal })) {
          assert.ok(ev.sequence > 0n);
          break;
        }
      } finally {
        clearTimeout(deadline);
        sessionManager.abort();
      }
      const span = await rpcSpan(server, rx, caller.traceId, "WatchEvents");
      assert.equal(span.parentSpanId, caller.spanId);
      assert.equal(span.attributes["spage.protocol"], "grpc");
      assert.equal(span.attributes["spage.code"], "canceled", JSON.stringify(span));
    });

    it("the submit's traceparent reaches the daemon in task.assigned", async () => {
      const caller = callerContext();
      const client = fetchClient(server.url);
      const taskId = await client.submit(caller.header);
      const span = await rpcSpan(server, rx, caller.traceId, "SubmitTask");
      const daemon = await TestDaemon.connect(server.url, {
        daemonId: `d-${backend}-${flags.length}`,
        capacity: 100,
      });
      try {
        const assigned = await daemon.waitFor("task.assigned", (e) => e.taskId === taskId);
        assert.equal(assigned.data.traceparent, `00-${caller.traceId}-${span.spanId}-01`);
        // The daemon's own stream is a span too, ended when the stream ends.
        daemon.halfClose();
        await daemon.ended;
        await server.gateway.tracing?.forceFlush();
        const stream = await rx.waitFor((s: ReceivedSpan) => s.name === "spage.api.SpageAPI/StreamEvents");
        // The writes the stream's handler made while it streamed are its children.
        await rx.waitFor(
          (s) =>
            s.name === "store.transaction" &&
            s.parentSpanId === stream.spanId &&
            String(s.attributes["db.operation.name"]).includes("daemonConnected"),
        );
      } finally {
        daemon.close();
      }
    });
  });
}

describe("tracing to a real agent's process", () => {
  it("the process sees TRACEPARENT with the submit's trace id", async () => {
    const cleanup = new Cleanup();
    const rx = await startOtlpReceiver();
    const server = await startTestServer(["--otel-endpoint", rx.url]);
    try {
      const out = join(tempDir(cleanup, "spage-tracing-"), "traceparent.txt");
      const agent = startAgentProcess({
        endpoint: server.url,
        daemonId: "traced-agent",
        command: `printf '%s' "$TRACEPARENT" > ${shellQuote(`${out}.tmp`)} && mv ${shellQuote(`${out}.tmp`)} ${shellQuote(out)}`,
      });
      cleanup.add(() => agent.cleanup());
      const caller = callerContext();
      await fetchClient(server.url).submit(caller.header);
      const span = await rpcSpan(server, rx, caller.traceId, "SubmitTask");
      await waitForFile(out, 15_000);
      assert.equal(readFileSync(out, "utf8"), `00-${caller.traceId}-${span.spanId}-01`);
      await agent.kill("SIGTERM");
    } finally {
      await cleanup.run();
      await server.close();
      await rx.close();
    }
  });
});
