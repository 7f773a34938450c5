/**
 * The fast path's per-call context: request headers read straight from Node's header object, and
 * settled into a small copy for a call that stays open, showing the same headers before and after.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { CallValues } from "../src/call-values.js";
import { CallContext, type NodeRequestHeaders } from "../src/fast-path/call-context.js";

function nodeHeaders(): NodeRequestHeaders {
  const h = Object.create(null) as Record<string, string | string[]>;
  Object.assign(h, {
    ":method": "POST",
    ":path": "/spage.api.SpageAPI/WatchEvents",
    ":authority": "127.0.0.1:1",
    ":scheme": "http",
    "content-type": "application/grpc",
    authorization: "Bearer abc",
    "x-many": ["a", "b"],
  });
  return h;
}

function context(timeoutMs?: number): CallContext {
  return new CallContext({
    service: SpageAPI,
    method: SpageAPI.method.watchEvents,
    protocolName: "grpc",
    url: "http://127.0.0.1:1/spage.api.SpageAPI/WatchEvents",
    nodeHeaders: nodeHeaders(),
    values: new CallValues(),
    timeoutMs,
    shutdownSignal: new AbortController().signal,
    clientGone: () => false,
  });
}

const shown = (h: Headers) => [...h.entries()];
const expected = [
  ["authorization", "Bearer abc"],
  ["content-type", "application/grpc"],
  ["x-many", "a, b"],
];

describe("CallContext request headers", () => {
  it("shows Node's headers without pseudo-headers", () => {
    const ctx = context();
    assert.deepEqual(shown(ctx.requestHeader), expected);
    assert.equal(ctx.requestHeader.get(":path"), null);
    assert.equal(ctx.requestHeader.get("Authorization"), "Bearer abc");
  });

  for (const readFirst of [true, false]) {
    it(`shows the same headers once settled (${readFirst ? "read before" : "first read after"})`, () => {
      const ctx = context();
      if (readFirst) assert.deepEqual(shown(ctx.requestHeader), expected);
      ctx.settleRequestHeaders();
      assert.deepEqual(shown(ctx.requestHeader), expected);
      assert.equal(ctx.requestHeader.get("x-many"), "a, b");
      assert.equal(ctx.requestHeader.has(":method"), false);
    });
  }

  it("keeps a change made before settling", () => {
    const ctx = context();
    ctx.requestHeader.set("x-added", "1");
    ctx.settleRequestHeaders();
    assert.equal(ctx.requestHeader.get("x-added"), "1");
    assert.equal(ctx.requestHeader.get("authorization"), "Bearer abc");
  });

  it("tells the time left before the deadline, and nothing without one", () => {
    const left = context(5_000).timeoutMs();
    assert.ok(left !== undefined && left > 4_000 && left <= 5_000, `${left}`);
    assert.equal(context().timeoutMs(), undefined);
  });
});
