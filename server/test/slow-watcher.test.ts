/**
 * A watcher that falls behind is ended with RESOURCE_EXHAUSTED without slowing the gateway or other
 * watchers, and resumes from its last sequence without missing anything.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const eventCount = 2500;

describe("slow watchers", () => {
  let server: TestServer;
  const sessions: Http2SessionManager[] = [];
  const client = () => {
    const sm = new Http2SessionManager(server.url);
    sessions.push(sm);
    return createClient(SpageAPI, createGrpcTransport({ baseUrl: server.url, sessionManager: sm }));
  };

  before(async () => {
    server = await startTestServer(["--watch-buffer", "256"]);
  });
  after(async () => {
    for (const sm of sessions) sm.abort();
    await server.close();
  });

  it("ends a watcher that falls too far behind, keeps the others whole, and lets it resume", async () => {
    const writer = client();
    const ac = new AbortController();
    const timeout = AbortSignal.timeout(60_000);
    const signal = AbortSignal.any([ac.signal, timeout]);

    // The fast watcher reads as events come; the slow one does not read until all are written.
    const fast = client()
      .watchEvents({ types: ["task.submitted"] }, { signal })
      [Symbol.asyncIterator]();
    const slow = client()
      .watchEvents({ types: ["task.submitted"] }, { signal })
      [Symbol.asyncIterator]();
    const firstFast = fast.next();
    const firstSlow = slow.next();
    await writer.submitTask({ type: "warmup" });
    await Promise.all([firstFast, firstSlow]);

    const fastSeen: bigint[] = [];
    const fastDone = (async () => {
      for (;;) {
        const r = await fast.next();
        if (r.done) return;
        fastSeen.push(r.value.sequence);
        if (fastSeen.length === eventCount) return;
      }
    })();
    for (let i = 0; i < eventCount; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => writer.submitTask({ type: "load" })));
    }
    await fastDone;
    assert.equal(fastSeen.length, eventCount, "the reading watcher got every event");
    assert.ok(
      fastSeen.every((s, i) => i === 0 || s > (fastSeen[i - 1] ?? 0n)),
      "in order",
    );

    const slowSeen: bigint[] = [];
    let ended: ConnectError | undefined;
    try {
      for (;;) {
        const r = await slow.next();
        if (r.done) break;
        slowSeen.push(r.value.sequence);
      }
    } catch (err) {
      ended = ConnectError.from(err);
    }
    assert.ok(ended, "the slow watcher is ended");
    assert.equal(ended.code, Code.ResourceExhausted, ended.message);
    assert.match(ended.rawMessage, /resume with after_sequence/);
    assert.ok(slowSeen.length < eventCount, "it was ended before it received everything");

    // Resuming from the last sequence it received yields exactly the rest.
    const last = slowSeen[slowSeen.length - 1] ?? 1n;
    const rest: bigint[] = [];
    const resumed = client().watchEvents({ types: ["task.submitted"], afterSequence: last }, { signal });
    for await (const ev of resumed) {
      rest.push(ev.sequence);
      if (rest.length + slowSeen.length === eventCount) break;
    }
    assert.deepEqual([...slowSeen, ...rest], fastSeen, "nothing missed, nothing twice");
    ac.abort();
  });
});
