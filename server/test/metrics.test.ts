/**
 * GetMetrics and GET /metrics report real figures: tasks by status, queue and run-time quantiles,
 * open watchers, and RPCs by code.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { TaskStatus } from "../../gen/spage/core/common_pb.js";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import { quantile } from "../src/services/gateway-metrics.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

describe("metrics", () => {
  let server: TestServer;
  let sm: Http2SessionManager;
  let api: ReturnType<typeof createClient<typeof SpageAPI>>;
  let exec: ReturnType<typeof createClient<typeof SpageExecution>>;

  before(async () => {
    server = await startTestServer();
    sm = new Http2SessionManager(server.url);
    const transport = createGrpcTransport({ baseUrl: server.url, sessionManager: sm });
    api = createClient(SpageAPI, transport);
    exec = createClient(SpageExecution, transport);
  });
  after(async () => {
    sm.abort();
    await server.close();
  });

  it("computes nearest-rank quantiles", () => {
    assert.equal(quantile([], 0.5), 0);
    assert.equal(quantile([3, 1, 2], 0.5), 2);
    assert.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9), 9);
    assert.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99), 10);
  });

  it("reports tasks by status, durations, watchers and RPC outcomes", async () => {
    for (let i = 0; i < 3; i++) await api.submitTask({ type: "playbook" });
    await exec.registerTask({ taskId: "m-run", playbook: "site.yml" });
    await api.reportTaskResult({ taskId: "m-run", status: TaskStatus.COMPLETED, exitCode: 0 });
    await api.getTaskStatus({ taskId: "m-missing" }).catch(() => undefined);

    const ac = new AbortController();
    const watching = (async () => {
      try {
        for await (const _ of api.watchEvents({}, { signal: ac.signal })) {
          // consume
        }
      } catch {
        // aborted below
      }
    })();
    const deadline = Date.now() + 5000;
    while (server.gateway.bus.subscriberCount === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));

    for (const client of [api, exec]) {
      const m = await client.getMetrics({});
      assert.equal(m.counters.tasks_pending, 3);
      assert.equal(m.counters.tasks_completed, 1);
      assert.equal(m.counters.tasks_submitted_total, 3);
      assert.ok((m.counters.rpc_ok_total ?? 0) >= 5);
      assert.equal(m.counters.rpc_not_found_total, 1);
      assert.equal(m.gauges.tasks_queued, 3);
      assert.equal(m.gauges.watchers_connected, 1);
      assert.equal(m.gauges.watch_streams_open, 1);
      assert.equal(m.histograms.task_run_seconds_count, 1);
      assert.ok((m.histograms.task_run_seconds_p99 ?? -1) >= 0);
      assert.ok("task_queue_seconds_p50" in m.histograms);
      assert.ok(m.timestamp);
    }

    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.match(text, /^spage_tasks\{status="pending"\} 3$/m);
    assert.match(text, /^spage_tasks\{status="completed"\} 1$/m);
    assert.match(text, /^spage_rpc_total\{code="not_found"\} 1$/m);
    assert.match(text, /^spage_watchers_connected 1$/m);
    assert.match(text, /^spage_task_run_seconds\{quantile="0\.99"\} [\d.e-]+$/m);
    for (const line of text.trim().split("\n")) {
      assert.match(
        line,
        /^(# (HELP|TYPE) .+|[a-z_]+(\{[a-z_]+="[^"]*"\})? -?[\d.e+-]+)$/,
        `bad line: ${line}`,
      );
    }
    ac.abort();
    await watching;
  });
});
