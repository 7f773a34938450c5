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
  keepError,
  mapStreamErrors,
} from "../src/interceptors/stream-errors.js";

async function* messages(n: number, failWith?: Error): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) yield i;
  if (failWith) throw failWith;
}

/** Wraps like three interceptors, innermost first, recording what each saw. */
function wrapThree(source: AsyncIterable<number>, seen: string[]) {
  let s = source;
  for (const name of ["inner", "middle", "outer"]) {
    s = mapStreamErrors(
      s,
      (err) => new Error(`${name}(${(err as Error).message})`),
      (err, aborted) => {
        seen.push(`${name}:${aborted ? "aborted" : err === undefined ? "ok" : (err as Error).message}`);
      },
    );
  }
  return s;
}

describe("mapStreamErrors", () => {
  it("shares one wrapper between interceptors", () => {
    const once = mapStreamErrors(messages(1), (e) => e);
    assert.equal(
      mapStreamErrors(once, (e) => e),
      once,
    );
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
      out = hookStream(out, keepError, (err, aborted) =>
        seen.push(`${name}:${aborted || err ? "bad" : "ok"}`),
      );
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
    const first = hookStream(res, keepError);
    assert.notEqual(first, res);
    assert.equal(hookStream(first, keepError), first);
    assert.deepEqual(reads, { header: 1, trailer: 1 });
  });

  it("makes a hookable stream only once", () => {
    const once = hookableStream(messages(1));
    assert.equal(hookableStream(once), once);
  });
});

describe("forEachHooked", () => {
  /**
   * Consumes three hooks' stream both ways, through forEachHooked on the hookable stream and with
   * `for await` over it (the shared generator), and returns what each way saw.
   */
  async function bothWays(
    source: () => AsyncGenerator<number>,
    each: (m: number) => boolean,
  ): Promise<{ direct: string[]; generator: string[] }> {
    const run = async (direct: boolean) => {
      const seen: string[] = [];
      const stream = wrapThree(hookableStream(source()), seen);
      const consume = async () => {
        if (direct) await forEachHooked(stream, async (m) => each(m));
        else {
          for await (const m of stream) {
            if (!each(m)) break;
          }
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
    return { direct: await run(true), generator: await run(false) };
  }

  /** Messages from a source that records when it is closed. */
  function closing(n: number, closed: string[], failWith?: Error) {
    return async function* (): AsyncGenerator<number> {
      try {
        for (let i = 0; i < n; i++) yield i;
        if (failWith) throw failWith;
      } finally {
        closed.push("closed");
      }
    };
  }

  it("ends cleanly as for await does", async () => {
    const got: number[] = [];
    const { direct, generator } = await bothWays(closing(3, []), (m) => {
      got.push(m);
      return true;
    });
    assert.deepEqual(direct, generator);
    assert.deepEqual(direct, ["inner:ok", "middle:ok", "outer:ok", "returned"]);
    assert.deepEqual(got, [0, 1, 2, 0, 1, 2]);
  });

  it("maps the source's error as for await does", async () => {
    const { direct, generator } = await bothWays(closing(2, [], new Error("boom")), () => true);
    assert.deepEqual(direct, generator);
    assert.equal(direct.at(-1), "threw outer(middle(inner(boom)))");
  });

  it("closes the source, then tells every hook, when the consumer stops", async () => {
    const closed: string[] = [];
    const { direct, generator } = await bothWays(closing(10, closed), (m) => m < 1);
    assert.deepEqual(direct, generator);
    assert.deepEqual(direct, ["inner:aborted", "middle:aborted", "outer:aborted", "returned"]);
    assert.deepEqual(closed, ["closed", "closed"]);
  });

  it("lets the consumer's own error through, the hooks hearing aborted", async () => {
    const { direct, generator } = await bothWays(closing(10, []), (m) => {
      if (m === 2) throw new Error("consumer");
      return true;
    });
    assert.deepEqual(direct, generator);
    assert.deepEqual(direct, ["inner:aborted", "middle:aborted", "outer:aborted", "threw consumer"]);
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
