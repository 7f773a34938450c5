/**
 * Fairness of server streams opened at once: a hundred watchers that each have a backlog to replay
 * all get their first events early, instead of the first streams filling their write buffers before
 * anything is sent. Asserted on the order in which the client receives messages (no timings): every
 * stream has its first event before any stream has its 50th, and each gets its whole backlog, in
 * order, once. Raw node:http2 clients, so the order seen is the order the bytes arrived in.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { EventSchema } from "../../gen/spage/core/common_pb.js";
import { openSqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const watchers = 100;
const connections = 4;
const backlog = 200;
/** No stream may reach this many events while another still has none. */
const headStart = 50;

/** Splits gRPC length-prefixed messages off the front of `buf`; returns the messages and the rest. */
function splitMessages(buf: Buffer): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let at = 0;
  while (buf.length - at >= 5) {
    const len = buf.readUInt32BE(at + 1);
    if (buf.length - at < 5 + len) break;
    messages.push(buf.subarray(at + 5, at + 5 + len));
    at += 5 + len;
  }
  return { messages, rest: buf.subarray(at) };
}

describe("stream fairness", () => {
  let server: TestServer;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "spage-fairness-"));
    const store = openSqliteStore({ path: join(dir, "spage.db") });
    for (let i = 0; i < backlog; i += 50) {
      await store.appendEvents(
        Array.from({ length: 50 }, (_, j) => ({
          type: "task.submitted",
          taskId: `backlog-${i + j}`,
          data: { type: "fairness", priority: "NORMAL", status: "PENDING" },
        })),
      );
    }
    server = await startTestServer([], { store });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("gives every one of 100 replaying streams its first event before any gets its 50th", async () => {
    const deadline = AbortSignal.timeout(60_000);
    const sessions = Array.from({ length: connections }, () => http2.connect(server.url));
    const received: bigint[][] = Array.from({ length: watchers }, () => []);
    // How many streams had at least one event when the first one reached `headStart`.
    let startedWhenOneHadHeadStart: number | undefined;
    let started = 0;
    let complete = 0;
    try {
      for (const s of sessions) s.on("error", () => {});
      // Every connection is up before any stream opens, so all requests leave in one go.
      await Promise.all(
        sessions.map((s) => new Promise<void>((resolve) => s.once("remoteSettings", () => resolve()))),
      );
      await new Promise<void>((resolve, reject) => {
        deadline.addEventListener("abort", () => reject(new Error("not every stream got its backlog")));
        for (let i = 0; i < watchers; i++) {
          const stream = (sessions[i % connections] as http2.ClientHttp2Session).request({
            ":method": "POST",
            ":path": "/spage.api.SpageAPI/WatchEvents",
            "content-type": "application/grpc",
            te: "trailers",
          });
          const mine = received[i] as bigint[];
          let pending: Buffer = Buffer.alloc(0);
          stream.on("data", (chunk: Buffer) => {
            const { messages, rest } = splitMessages(Buffer.concat([pending, chunk]));
            pending = rest;
            for (const m of messages) {
              mine.push(fromBinary(EventSchema, m).sequence);
              if (mine.length === 1) started++;
              if (mine.length === headStart) startedWhenOneHadHeadStart ??= started;
              if (mine.length === backlog && ++complete === watchers) resolve();
            }
          });
          stream.on("error", () => {});
          stream.on("close", () => {
            if (mine.length < backlog) reject(new Error(`stream ${i} closed after ${mine.length} events`));
          });
          // WatchEventsRequest {}: the whole log, then live events.
          stream.end(Buffer.from([0, 0, 0, 0, 0]));
        }
      });
    } finally {
      for (const s of sessions) s.destroy();
    }

    assert.equal(
      startedWhenOneHadHeadStart,
      watchers,
      `only ${startedWhenOneHadHeadStart} of ${watchers} streams had an event when one had ${headStart}`,
    );
    const expected = Array.from({ length: backlog }, (_, i) => BigInt(i + 1));
    for (const [i, seqs] of received.entries()) {
      assert.deepEqual(seqs, expected, `stream ${i}: the whole backlog, in order, once`);
    }
  });
});
