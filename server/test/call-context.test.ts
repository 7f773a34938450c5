/**
 * The fast path's per-call context: request headers read straight from Node's header object, and
 * settled into a small copy for a call that stays open, showing the same headers before and after.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { CallValues } from "../src/call-values.js";
import {
  CallContext,
  type CallInit,
  CallsInProgress,
  type NodeRequestHeaders,
} from "../src/fast-path/call-context.js";

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

function context(
  timeoutMs?: number,
  shutdown = new CallsInProgress(new AbortController().signal),
  clientGone: CallInit["clientGone"] = () => false,
): CallContext {
  return new CallContext({
    service: SpageAPI,
    method: SpageAPI.method.watchEvents,
    protocolName: "grpc",
    target: { scheme: "http", authority: "127.0.0.1:1", path: "/spage.api.SpageAPI/WatchEvents" },
    nodeHeaders: nodeHeaders(),
    values: new CallValues(),
    timeoutMs,
    shutdown,
    clientGone,
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

  it("puts the URL together from where the request was sent", () => {
    assert.equal(context().url, "http://127.0.0.1:1/spage.api.SpageAPI/WatchEvents");
  });

  it("tells the time left before the deadline, and nothing without one", () => {
    const left = context(5_000).timeoutMs();
    assert.ok(left !== undefined && left > 4_000 && left <= 5_000, `${left}`);
    assert.equal(context().timeoutMs(), undefined);
  });
});

describe("CallContext signal and shutdown", () => {
  it("aborts the signals in use with the shutdown's reason, through one listener", () => {
    const controller = new AbortController();
    const inProgress = new CallsInProgress(controller.signal);
    const read = context(undefined, inProgress);
    const unread = context(undefined, inProgress);
    const ended = context(undefined, inProgress);
    const readSignal = read.signal;
    const endedSignal = ended.signal;
    ended.end();
    assert.equal(endedSignal.aborted, true);
    assert.equal(inProgress.size, 1, "only the call whose signal is in use and not ended");
    const reason = new Error("shutting down");
    controller.abort(reason);
    assert.equal(readSignal.aborted, true);
    assert.equal(readSignal.reason, reason);
    assert.equal(inProgress.size, 0);
    assert.equal(unread.signal.aborted, true, "a signal first read after shutdown is born aborted");
    assert.equal(unread.signal.reason, reason);
  });

  it("ends the call and lets go of it when the client goes away", () => {
    const inProgress = new CallsInProgress(new AbortController().signal);
    const ctx = context(undefined, inProgress);
    const signal = ctx.signal;
    ctx.clientGone();
    assert.equal(signal.aborted, true);
    ctx.end();
    assert.equal(inProgress.size, 0);
  });

  it("ends the call's listeners once, with why, without making its signal", async () => {
    const controller = new AbortController();
    const inProgress = new CallsInProgress(controller.signal);
    const heard = (ctx: CallContext) => {
      const reasons: unknown[] = [];
      ctx.whenAborted((r) => reasons.push(r));
      return reasons;
    };
    // Shutdown.
    const shut = context(undefined, inProgress);
    const shutHeard = heard(shut);
    assert.equal(inProgress.size, 1, "a listener puts the call among those the shutdown aborts");
    const reason = new Error("shutting down");
    controller.abort(reason);
    assert.deepEqual(shutHeard, [reason]);
    shut.end();
    assert.deepEqual(shutHeard, [reason], "told once");
    // Client gone, then ended.
    const gone = context(undefined, new CallsInProgress(new AbortController().signal));
    const goneHeard = heard(gone);
    gone.clientGone();
    gone.end();
    assert.equal(goneHeard.length, 1);
    assert.ok(goneHeard[0] instanceof ConnectError && goneHeard[0].code === Code.Canceled);
    // Ended with no reason.
    const ended = context();
    const endedHeard = heard(ended);
    ended.end();
    assert.deepEqual(endedHeard, [undefined]);
    assert.deepEqual(heard(ended), [undefined], "a listener added after the end hears at once");
    // The deadline.
    const late = context(1);
    const deadline = await new Promise<unknown>((resolve) => late.whenAborted(resolve));
    assert.ok(deadline instanceof ConnectError && deadline.code === Code.DeadlineExceeded);
    // The signal made afterwards carries the same reason.
    assert.equal(late.signal.aborted, true);
    assert.equal(late.signal.reason, deadline);
  });

  it("tells a listener at once when the client is already gone", () => {
    let gone = false;
    const ctx = context(undefined, undefined, () => gone);
    gone = true;
    ctx.clientGone(); // nobody listens yet: nothing to tell
    const reasons: unknown[] = [];
    ctx.whenAborted((r) => reasons.push(r));
    assert.equal(reasons.length, 1);
    assert.ok(reasons[0] instanceof ConnectError && reasons[0].code === Code.Canceled);
  });
});
