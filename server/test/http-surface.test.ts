/**
 * What the port offers besides the Spage RPCs: CORS for configured origins, /healthz and /readyz,
 * the standard gRPC health service (Check and Watch) and server reflection v1 and v1alpha.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const run = promisify(execFile);
const buf = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));

describe("CORS", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(["--cors-origins", "http://dash.example:8080,https://ops.example"]);
  });
  after(() => server.close());

  it("answers a preflight from a configured origin with Connect's headers plus Authorization", async () => {
    const res = await fetch(`${server.url}/spage.api.SpageAPI/ListTasks`, {
      method: "OPTIONS",
      headers: {
        origin: "http://dash.example:8080",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,connect-protocol-version,authorization",
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), "http://dash.example:8080");
    const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
    for (const h of [
      "content-type",
      "connect-protocol-version",
      "connect-timeout-ms",
      "x-grpc-web",
      "authorization",
    ]) {
      assert.ok(allowed.includes(h), `allows ${h}`);
    }
    assert.match(res.headers.get("access-control-allow-methods") ?? "", /POST/);
  });

  it("exposes gRPC-Web status headers on the actual response", async () => {
    const res = await fetch(`${server.url}/spage.api.SpageAPI/HealthCheck`, {
      method: "POST",
      headers: { origin: "https://ops.example", "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), "https://ops.example");
    assert.match(res.headers.get("access-control-expose-headers") ?? "", /Grpc-Status/i);
    await res.arrayBuffer();
  });

  it("gives an unlisted origin no CORS grant", async () => {
    const res = await fetch(`${server.url}/spage.api.SpageAPI/ListTasks`, {
      method: "OPTIONS",
      headers: { origin: "http://evil.example", "access-control-request-method": "POST" },
    });
    assert.equal(res.headers.get("access-control-allow-origin"), null);
    await res.arrayBuffer();
  });
});

describe("health and reflection", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it("serves /healthz and /readyz", async () => {
    const live = await fetch(`${server.url}/healthz`);
    assert.equal(live.status, 200);
    assert.equal(((await live.json()) as { status: string }).status, "ok");
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200);
    const body = (await ready.json()) as { ready: boolean; checks: Record<string, string> };
    assert.equal(body.ready, true);
    assert.equal(body.checks.store, "ok");
  });

  it("lists services through reflection v1 and v1alpha", async () => {
    for (const protocol of ["grpc-v1", "grpc-v1alpha"]) {
      const { stdout } = await run(buf, [
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--reflect-protocol",
        protocol,
        "--list-services",
        server.url,
      ]);
      const services = stdout.trim().split("\n").sort();
      assert.deepEqual(services, [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "spage.api.SpageAPI",
        "spage.core.SpageExecution",
      ]);
    }
  });

  it("streams NOT_SERVING to a grpc.health.v1 Watch when the gateway shuts down", async () => {
    const own = await startTestServer();
    const sm = new Http2SessionManager(own.url);
    const client = createClient(Health, createGrpcTransport({ baseUrl: own.url, sessionManager: sm }));
    const seen: HealthCheckResponse_ServingStatus[] = [];
    const ac = new AbortController();
    const watching = (async () => {
      try {
        for await (const res of client.watch({ service: "" }, { signal: ac.signal, timeoutMs: 10_000 })) {
          seen.push(res.status);
          if (seen.length === 1) void own.gateway.shutdown();
          if (res.status === HealthCheckResponse_ServingStatus.NOT_SERVING) return;
        }
      } finally {
        ac.abort();
      }
    })();
    await watching;
    sm.abort();
    await own.gateway.shutdown();
    assert.deepEqual(seen, [
      HealthCheckResponse_ServingStatus.SERVING,
      HealthCheckResponse_ServingStatus.NOT_SERVING,
    ]);
  });
});
