/**
 * ListTasks over the wire: the seed's filters, the added ones, both orders, exact totals, and page
 * tokens that stay stable while tasks are added.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ListOrder, SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { TaskPriority } from "../../gen/spage/core/common_pb.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

describe("ListTasks", () => {
  let server: TestServer;
  let api: ReturnType<typeof createClient<typeof SpageAPI>>;
  let startedAt = 0;

  before(async () => {
    server = await startTestServer();
    api = createClient(SpageAPI, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    startedAt = Date.now();
    for (let i = 0; i < 25; i++) {
      await api.submitTask({
        taskId: `list-${String(i).padStart(2, "0")}`,
        type: i % 5 === 0 ? "script" : "playbook",
        priority: i % 2 === 0 ? TaskPriority.HIGH : TaskPriority.LOW,
      });
    }
    await api.cancelTask({ taskId: "list-03" });
  });
  after(() => server.close());

  it("keeps the seed's limit, offset, status and type filters", async () => {
    const page = await api.listTasks({ limit: 10, offset: 5 });
    assert.equal(page.total, 25);
    assert.equal(page.tasks.length, 10);
    assert.equal(page.tasks[0]?.id, "list-19", "newest first, after skipping 5");
    const scripts = await api.listTasks({ type: "script" });
    assert.equal(scripts.total, 5);
    const canceled = await api.listTasks({ status: "canceled" });
    assert.deepEqual(
      canceled.tasks.map((t) => t.id),
      ["list-03"],
    );
    const byEnumName = await api.listTasks({ status: "TASK_STATUS_PENDING" });
    assert.equal(byEnumName.total, 24);
    assert.ok(page.sequence >= 26n, "the answer says which event sequence it reflects");
  });

  it("filters by priority, creation time and id prefix, in either order", async () => {
    const high = await api.listTasks({ priority: TaskPriority.HIGH, limit: 100 });
    assert.equal(high.total, 13);
    assert.ok(high.tasks.every((t) => t.priority === TaskPriority.HIGH));
    const prefixed = await api.listTasks({ idPrefix: "list-2", order: ListOrder.OLDEST_FIRST });
    assert.deepEqual(
      prefixed.tasks.map((t) => t.id),
      ["list-20", "list-21", "list-22", "list-23", "list-24"],
    );
    const inRange = await api.listTasks({
      createdAfter: timestampFromMs(startedAt - 1000),
      createdBefore: timestampFromMs(Date.now() + 1000),
    });
    assert.equal(inRange.total, 25);
    const later = await api.listTasks({ createdAfter: timestampFromMs(Date.now() + 60_000) });
    assert.equal(later.total, 0);
  });

  it("pages by token without skipping or repeating while tasks are added", async () => {
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await api.listTasks({ limit: 7, pageToken: token, order: ListOrder.NEWEST_FIRST });
      assert.equal(page.total >= 25, true);
      seen.push(...page.tasks.map((t) => t.id));
      token = page.nextPageToken;
      if (pages++ === 0) await api.submitTask({ taskId: "list-late", type: "playbook" });
    } while (token !== "");
    assert.equal(seen.length, 25);
    assert.equal(new Set(seen).size, 25);
    assert.ok(!seen.includes("list-late"), "a task added while paging newest-first is on no later page");
    assert.equal(pages, 4);
  });

  it("names the bad field of a bad listing", async () => {
    const cases: [Parameters<typeof api.listTasks>[0], RegExp][] = [
      [{ limit: 5000 }, /limit/],
      [{ offset: -1 }, /offset/],
      [{ status: "NAPPING" }, /status/],
      [{ pageToken: "not-a-token" }, /page_token/],
      [{ pageToken: "eyJ2IjoxLCJwIjo1LCJvIjoibmV3ZXN0IiwiZiI6IngifQ" }, /page_token.*other filters/],
      [{ idPrefix: "x".repeat(200) }, /id_prefix/],
      [{ createdAfter: timestampFromMs(2000), createdBefore: timestampFromMs(1000) }, /created_before/],
    ];
    for (const [req, field] of cases) {
      await assert.rejects(api.listTasks(req), (err: unknown) => {
        const ce = ConnectError.from(err);
        assert.equal(ce.code, Code.InvalidArgument, ce.message);
        assert.match(ce.rawMessage, field);
        return true;
      });
    }
    const first = await api.listTasks({ limit: 2, type: "playbook" });
    await assert.rejects(
      api.listTasks({ limit: 2, type: "script", pageToken: first.nextPageToken }),
      /other filters/,
    );
    await assert.rejects(
      api.listTasks({ limit: 2, type: "playbook", pageToken: first.nextPageToken, offset: 3 }),
      /offset/,
    );
  });
});
