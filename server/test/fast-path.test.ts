/**
 * What the unary fast path takes and what it leaves to Connect's handler, seen from outside: the
 * `fast_path_calls_total` counter grows by exactly one for each unary call it serves (every real
 * client and protocol it speaks), and not at all for streams, Connect GET, compressed requests,
 * unusual content types, invalid timeouts or with --no-fast-path, while every answer stays right.
 * Also: an over-limit body is refused from its envelope header and the connection stays usable.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetTaskStatusRequestSchema, SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { grpcEnvelope, grpcMessageOf, grpcStatusOf, http1Post, http2Post } from "./helpers/one-shot-http.js";
import {
  connectNodeClients,
  fetchJsonClient,
  grpcJsClient,
  type SuiteClient,
  str,
} from "./helpers/suite-clients.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const getStatusPath = `/${SpageAPI.typeName}/GetTaskStatus`;

/** The gateway's count of calls the fast path served, from GET /metrics (not an RPC itself). */
async function fastCalls(server: TestServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = /^spage_fast_path_calls_total (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** One gRPC message with the compressed flag set. */
function compressedEnvelope(payload: Uint8Array): Buffer {
  const out = grpcEnvelope(payload);
  out[0] = 1;
  return out;
}

describe("unary fast path: what it serves", () => {
  let server: TestServer;
  let taskId = "";
  const clients: SuiteClient[] = [];

  before(async () => {
    server = await startTestServer(["--read-max-bytes", "4096"]);
    clients.push(grpcJsClient(server.url), ...connectNodeClients(server.url), fetchJsonClient(server.url));
    const res = await clients[0]?.unary(SpageAPI, "SubmitTask", { type: "fast-path" });
    taskId = str(res?.taskId);
  });

  after(async () => {
    for (const c of clients) await c.close();
    await server.close();
  });

  it("serves one unary call of every client and protocol it speaks, once each", async () => {
    for (const c of clients) {
      const before = await fastCalls(server);
      const res = await c.unary(SpageAPI, "GetTaskStatus", { taskId });
      assert.equal(str((res.task as { id?: string } | undefined)?.id), taskId, c.name);
      const taken = (await fastCalls(server)) - before;
      // gRPC over HTTP/1.1 needs trailers: that one is Connect's.
      const expected = c.name.includes("gRPC") && c.name.endsWith("h1") && !c.name.includes("Web") ? 0 : 1;
      assert.equal(taken, expected, `${c.name}: calls served by the fast path`);
    }
  });

  it("serves WatchEvents over native gRPC on HTTP/2, from grpc-js and connect-node", async () => {
    for (const c of clients.slice(0, 2)) {
      const before = await fastCalls(server);
      const watch = c.serverStream(SpageAPI, "WatchEvents", { taskId }, { timeoutMs: 2000 });
      for await (const e of watch) {
        assert.ok(e.sequence, c.name);
        break;
      }
      // fastCalls reads GET /metrics, which is no RPC: the watch is the only call in between.
      assert.equal((await fastCalls(server)) - before, 1, c.name);
    }
  });

  it("leaves other streams, Connect GET, compressed requests, unusual content types and bad timeouts to Connect", async () => {
    const before = await fastCalls(server);
    const msg = toBinary(GetTaskStatusRequestSchema, create(GetTaskStatusRequestSchema, { taskId }));
    const json = JSON.stringify({ taskId });
    // A server stream over the Connect protocol.
    const watch = clients[2]?.serverStream(SpageAPI, "WatchEvents", { taskId }, { timeoutMs: 2000 });
    for await (const e of watch ?? []) {
      assert.ok(e.sequence);
      break;
    }
    // Connect GET of a side-effect-free method: HealthCheck.
    const get = await fetch(
      `${server.url}/spage.api.SpageAPI/HealthCheck?encoding=json&message=${encodeURIComponent("{}")}`,
    );
    assert.ok(get.status === 200 || get.status === 405, `Connect GET answered ${get.status}`);
    // A gzip-compressed gRPC request.
    const gz = await http2Post(
      server.url,
      getStatusPath,
      { "content-type": "application/grpc", te: "trailers", "grpc-encoding": "gzip" },
      compressedEnvelope(gzipSync(msg)),
    );
    assert.equal(grpcStatusOf(gz), "0", grpcMessageOf(gz));
    // JSON over gRPC, and Connect JSON with an unusual spelling of its content type.
    const grpcJson = await http2Post(
      server.url,
      getStatusPath,
      { "content-type": "application/grpc+json", te: "trailers" },
      grpcEnvelope(Buffer.from(json)),
    );
    assert.equal(grpcStatusOf(grpcJson), "0");
    const odd = await http1Post(server.url, getStatusPath, { "content-type": "application/JSON" }, json);
    assert.equal(odd.status, 200);
    // A grpc-timeout Connect refuses.
    const badTimeout = await http2Post(
      server.url,
      getStatusPath,
      { "content-type": "application/grpc", te: "trailers", "grpc-timeout": "forever" },
      grpcEnvelope(msg),
    );
    assert.equal(grpcStatusOf(badTimeout), "3", grpcMessageOf(badTimeout));
    assert.equal((await fastCalls(server)) - before, 0);
  });

  it("refuses an over-limit body from its envelope header and keeps the connection usable", async () => {
    const before = await fastCalls(server);
    const big = grpcEnvelope(Buffer.alloc(64 * 1024, 1));
    const res = await http2Post(
      server.url,
      getStatusPath,
      { "content-type": "application/grpc", te: "trailers" },
      big,
    );
    assert.equal(grpcStatusOf(res), "8");
    assert.match(grpcMessageOf(res) ?? "", /message size 65536 is larger than configured readMaxBytes 4096/);
    const web = await http1Post(
      server.url,
      getStatusPath,
      { "content-type": "application/grpc-web+proto" },
      big,
    );
    assert.equal(web.status, 200);
    assert.match(web.body.toString("latin1"), /grpc-status: ?8/);
    const json = await http1Post(
      server.url,
      getStatusPath,
      { "content-type": "application/json" },
      `{"taskId":"${"x".repeat(8000)}"}`,
    );
    assert.equal(json.status, 429);
    assert.equal((await fastCalls(server)) - before, 3);
    // The same connections' clients still work.
    for (const c of clients) await c.unary(SpageAPI, "GetTaskStatus", { taskId });
  });
});

describe("unary fast path: --no-fast-path", () => {
  it("leaves every call to Connect's handler", async () => {
    const server = await startTestServer(["--no-fast-path"]);
    const clients = [
      grpcJsClient(server.url),
      ...connectNodeClients(server.url),
      fetchJsonClient(server.url),
    ];
    try {
      const submitted = await clients[0]?.unary(SpageAPI, "SubmitTask", { type: "stock" });
      for (const c of clients) await c.unary(SpageAPI, "GetTaskStatus", { taskId: str(submitted?.taskId) });
      assert.equal(await fastCalls(server), 0);
    } finally {
      for (const c of clients) await c.close();
      await server.close();
    }
  });
});
