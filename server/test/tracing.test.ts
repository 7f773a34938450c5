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
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { context, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { TaskPriority } from "../../gen/spage/core/common_pb.js";
import { shellQuote } from "../src/agent/command-template.js";
import { openPostgresStore } from "../src/store/postgres/postgres-store.js";
import { Cleanup, tempDir, waitForFile } from "./helpers/agent-harness.js";
import { startAgentProcess } from "./helpers/agent-process.js";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./helpers/otlp-receiver.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";
import { TestDaemon } from "./helpers/test-daemon.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";
import { callerContext, everyClient, fetchClient, withHeader } from "./helpers/traced-clients.js";

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

    it("a task keeps its submit's traceparent, and stays idempotent; a client's own traceparent wins", async () => {
      const tasks = server.gateway.services.deps.tasks;
      const tracing = server.gateway.tracing;
      assert.ok(tracing);
      const call = tracing.tracer.startSpan("caller");
      const input = {
        taskId: "",
        type: "job",
        priority: TaskPriority.NORMAL,
        payload: { a: "1" },
        metadata: {},
      };
      const first = await context.with(trace.setSpan(ROOT_CONTEXT, call), () => tasks.submit(input));
      call.end();
      const sc = call.spanContext();
      assert.equal(first.task.metadata.traceparent, `00-${sc.traceId}-${sc.spanId}-01`);
      // The generated id reused with the same request is the same task, though metadata differs.
      const again = await tasks.submit({ ...input, taskId: first.task.id });
      assert.equal(again.created, false);
      assert.equal(again.task.id, first.task.id);
      const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      const chosen = await tasks.submit({ ...input, metadata: { traceparent: own } });
      assert.equal(chosen.task.metadata.traceparent, own);
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
