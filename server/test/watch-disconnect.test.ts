/**
 * A watcher whose connection simply closes (no RST_STREAM, e.g. a closed laptop or a killed
 * process) ends as CANCELED, like one that cancels its call: it is not logged or counted as an
 * Internal server fault.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { withTimeout } from "./helpers/event-watch.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

describe("watcher disconnects", () => {
  let server: TestServer;
  let sessionManager: Http2SessionManager;

  before(async () => {
    server = await startTestServer();
    sessionManager = new Http2SessionManager(server.url);
  });
  after(async () => {
    sessionManager.abort();
    await server.close();
  });

  /** Polls GetMetrics until `ok` holds for it; fails after `timeoutMs`. */
  async function metricsUntil(
    ok: (m: { counters: Record<string, number>; gauges: Record<string, number> }) => boolean,
    timeoutMs = 10_000,
  ) {
    const api = createClient(SpageAPI, createGrpcTransport({ baseUrl: server.url, sessionManager }));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await api.getMetrics({});
      if (ok(m)) return m;
      if (Date.now() > deadline) {
        throw new Error(
          `metrics never matched: ${JSON.stringify({ counters: m.counters, gauges: m.gauges })}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it("ends watches whose connection closes as canceled, not as internal errors", async () => {
    // Several streams: Node reports CANCEL for the first stream of a dropped connection but closes the
    // others with NO_ERROR, which Connect turns into a plain AbortError.
    const watches = 5;
    const session = http2.connect(server.url);
    session.on("error", () => {});
    const firstEvents: Promise<void>[] = [];
    for (let i = 0; i < watches; i++) {
      const stream = session.request({
        ":method": "POST",
        ":path": "/spage.api.SpageAPI/WatchEvents",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => {});
      // Live: each gets its response headers and an event, as a watcher that has been following has.
      firstEvents.push(new Promise<void>((resolve) => stream.once("data", () => resolve())));
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    }
    await metricsUntil((m) => m.gauges.watchers_connected === watches);
    const api = createClient(SpageAPI, createGrpcTransport({ baseUrl: server.url, sessionManager }));
    await api.submitTask({ type: "disconnect" });
    await withTimeout(Promise.all(firstEvents), 10_000, "the watchers' first events");

    session.destroy();
    const ended = (m: { counters: Record<string, number> }) =>
      (m.counters.rpc_canceled_total ?? 0) + (m.counters.rpc_internal_total ?? 0);
    const m = await metricsUntil((m) => m.gauges.watchers_connected === 0 && ended(m) >= watches);
    assert.equal(m.counters.rpc_internal_total ?? 0, 0, "a client going away is no server fault");
    assert.equal(m.counters.rpc_canceled_total, watches);
  });
});
