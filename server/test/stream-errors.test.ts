/**
 * mapStreamErrors: interceptors that wrap the same response stream share one generator, and each
 * sees the stream's end as it would through nested wrappers. hookStream: a response whose stream is
 * already hookable comes back unchanged, without its headers or trailers being read.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { StreamResponse } from "@connectrpc/connect";
import {
  forEachHooked,
  hookableStream,
  hookStream,
  mapStreamErrors,
  pushHooked,
} from "../src/interceptors/stream-errors.js";
import { kPushTo, type Pushable, type PushSink } from "../src/push-stream.js";

async function* messages(n: number, failWith?: Error): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) yield i;
  if (failWith) throw failWith;
}

/** Wraps like three interceptors, innermost first, recording what each saw. */
function wrapThree(source: AsyncIterable<number>, seen: string[]) {
  let s = source;
  for (const name of ["inner", "middle", "outer"]) {
    s = mapStreamErrors(s, {
      map: (err) => new Error(`${name}(${(err as Error).message})`),
      onEnd: (err, aborted) => {
        seen.push(`${name}:${aborted ? "aborted" : err === undefined ? "ok" : (err as Error).message}`);
      },
    });
  }
  return s;
}

describe("mapStreamErrors", () => {
  it("shares one wrapper between interceptors", () => {
    const once = mapStreamErrors(messages(1), {});
    assert.equal(mapStreamErrors(once, {}), once);
  });

  it("passes every message and tells each hook of a clean end, innermost first", async () => {
    const seen: string[] = [];
    const got: number[] = [];
    for await (const m of wrapThree(messages(3), seen)) got.push(m);
    assert.deepEqual(got, [0, 1, 2]);
    assert.deepEqual(seen, ["inner:ok", "middle:ok", "outer:ok"]);
  });

  it("maps an error through each hook in turn and throws the last mapping", async () => {
    const seen: string[] = [];
    const got: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const m of wrapThree(messages(2, new Error("boom")), seen)) got.push(m);
      })(),
      { message: "outer(middle(inner(boom)))" },
    );
    assert.deepEqual(got, [0, 1]);
    assert.deepEqual(seen, [
      "inner:inner(boom)",
      "middle:middle(inner(boom))",
      "outer:outer(middle(inner(boom)))",
    ]);
  });

  it("tells every hook when the consumer stops early", async () => {
    const seen: string[] = [];
    for await (const m of wrapThree(messages(10), seen)) {
      if (m === 1) break;
    }
    assert.deepEqual(seen, ["inner:aborted", "middle:aborted", "outer:aborted"]);
  });
});

describe("hookStream", () => {
  /** A stream response that counts reads of its header and trailer. */
  function response(message: AsyncIterable<number>) {
    const reads = { header: 0, trailer: 0 };
    const res = {
      stream: true,
      message,
      get header() {
        reads.header++;
        return new Headers();
      },
      get trailer() {
        reads.trailer++;
        return new Headers();
      },
    } as unknown as StreamResponse;
    return { res, reads };
  }

  it("returns a response whose stream is hookable as it is, its headers unread", async () => {
    const { res, reads } = response(hookableStream(messages(2)));
    const seen: string[] = [];
    let out = res;
    for (const name of ["inner", "outer"]) {
      out = hookStream(out, {
        onEnd: (err, aborted) => seen.push(`${name}:${aborted || err ? "bad" : "ok"}`),
      });
    }
    assert.equal(out, res);
    assert.deepEqual(reads, { header: 0, trailer: 0 });
    const got: number[] = [];
    for await (const m of out.message as AsyncIterable<number>) got.push(m);
    assert.deepEqual(got, [0, 1]);
    assert.deepEqual(seen, ["inner:ok", "outer:ok"]);
  });

  it("copies a response whose stream is not hookable yet, once", () => {
    const { res, reads } = response(messages(1));
    const first = hookStream(res, {});
    assert.notEqual(first, res);
    assert.equal(hookStream(first, {}), first);
    assert.deepEqual(reads, { header: 1, trailer: 1 });
  });

  it("makes a hookable stream only once", () => {
    const once = hookableStream(messages(1));
    assert.equal(hookableStream(once), once);
  });
});

describe("forEachHooked and pushHooked", () => {
  /**
   * Consumes three hooks' stream three ways: through forEachHooked on the hookable stream, with
   * `for await` over it (the shared generator), and pushed into a sink through pushHooked; returns
   * what each way saw.
   */
  async function bothWays(
    source: () => AsyncIterable<number>,
    each: (m: number) => boolean,
  ): Promise<{ direct: string[]; generator: string[]; pushed: string[] }> {
    const run = async (how: "direct" | "generator" | "pushed") => {
      const seen: string[] = [];
      const stream = wrapThree(hookableStream(source()), seen);
      const consume = async () => {
        if (how === "direct") await forEachHooked(stream, async (m) => each(m));
        else if (how === "generator") {
          for await (const m of stream) {
            if (!each(m)) break;
          }
        } else {
          await new Promise<void>((resolve, reject) => {
            const sink: PushSink<number> = {
              push: (m) => (each(m) ? undefined : false),
              end: (err) => (err === undefined ? resolve() : reject(err)),
            };
            assert.ok(pushHooked(stream, sink), "a pushable source is pushed");
          });
        }
      };
      try {
        await consume();
        seen.push("returned");
      } catch (err) {
        seen.push(`threw ${(err as Error).message}`);
      }
      return seen;
    };
    return { direct: await run("direct"), generator: await run("generator"), pushed: await run("pushed") };
  }

  /** Messages from a source that records when it is closed; pulled or pushed. */
  function closing(n: number, closed: string[], failWith?: Error) {
    return () => new ClosingSource(n, closed, failWith);
  }

  class ClosingSource implements AsyncIterable<number>, Pushable<number> {
    constructor(
      private readonly n: number,
      private readonly closed: string[],
      private readonly failWith?: Error,
    ) {}

    async *[Symbol.asyncIterator](): AsyncGenerator<number> {
      try {
        for (let i = 0; i < this.n; i++) yield i;
        if (this.failWith) throw this.failWith;
      } finally {
        this.closed.push("closed");
      }
    }

    [kPushTo](sink: PushSink<number>): void {
      void (async () => {
        let error: Error | undefined;
        let i = 0;
        for (; i < this.n; i++) {
          const r = sink.push(i);
          if (r === false) break;
          if (r) await r;
        }
        if (i === this.n) error = this.failWith;
        this.closed.push("closed");
        sink.end(error);
      })();
    }
  }

  const sameEveryWay = (seen: { direct: string[]; generator: string[]; pushed: string[] }) => {
    assert.deepEqual(seen.direct, seen.generator);
    assert.deepEqual(seen.pushed, seen.generator);
  };

  it("ends cleanly as for await does", async () => {
    const got: number[] = [];
    const seen = await bothWays(closing(3, []), (m) => {
      got.push(m);
      return true;
    });
    sameEveryWay(seen);
    assert.deepEqual(seen.direct, ["inner:ok", "middle:ok", "outer:ok", "returned"]);
    assert.deepEqual(got, [0, 1, 2, 0, 1, 2, 0, 1, 2]);
  });

  it("maps the source's error as for await does", async () => {
    const seen = await bothWays(closing(2, [], new Error("boom")), () => true);
    sameEveryWay(seen);
    assert.equal(seen.direct.at(-1), "threw outer(middle(inner(boom)))");
  });

  it("closes the source, then tells every hook, when the consumer stops", async () => {
    const closed: string[] = [];
    const seen = await bothWays(closing(10, closed), (m) => m < 1);
    sameEveryWay(seen);
    assert.deepEqual(seen.direct, ["inner:aborted", "middle:aborted", "outer:aborted", "returned"]);
    assert.deepEqual(closed, ["closed", "closed", "closed"]);
  });

  it("lets the consumer's own error through, the hooks hearing aborted", async () => {
    const seen = await bothWays(closing(10, []), (m) => {
      if (m === 2) throw new Error("consumer");
      return true;
    });
    sameEveryWay(seen);
    assert.deepEqual(seen.direct, ["inner:aborted", "middle:aborted", "outer:aborted", "threw consumer"]);
  });

  it("leaves a stream that cannot push to the caller", () => {
    const sink: PushSink<number> = { push: () => undefined, end: () => {} };
    assert.equal(pushHooked(hookableStream(messages(1)), sink), false);
    assert.equal(pushHooked(messages(1), sink), false);
  });

  it("reads a stream that is not hookable with for await", async () => {
    const got: number[] = [];
    await forEachHooked(messages(3), (m) => {
      got.push(m);
      return m < 1;
    });
    assert.deepEqual(got, [0, 1]);
  });
});
