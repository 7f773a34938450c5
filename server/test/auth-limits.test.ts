/**
 * Limits of an authenticated gateway, against real gateways started with `--auth on`: the
 * brute-force lockout of an address (with RetryInfo, Retry-After and the audit records of the
 * failures and the lockout), per-principal rate limits, the per-principal stream cap, and an
 * oversized Authorization header.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { rejectsWith } from "./behaviour-suite.js";
import {
  authenticate,
  createKey,
  generousRates,
  hex,
  idOf,
  openLimits,
  refused,
  secret,
  submit,
  until,
  useGateway,
} from "./helpers/auth-clients.js";
import { bearer, CallError, connectNodeClient, type SuiteClient, str } from "./helpers/suite-clients.js";

/** The google.rpc.RetryInfo delay of a connect-node error, in milliseconds. */
function retryDelayMs(err: CallError): number {
  assert.ok(err.raw instanceof ConnectError, "a connect-node error");
  const [info] = err.raw.findDetails(RetryInfoSchema);
  assert.ok(info?.retryDelay, "the error carries google.rpc.RetryInfo");
  return Number(info.retryDelay.seconds) * 1000 + info.retryDelay.nanos / 1e6;
}

describe("brute force", () => {
  const g = useGateway(["--auth", "on", "--auth-failures-per-minute", "5", "--rate-limits", generousRates]);
  let adminFromElsewhere: SuiteClient;

  before(() => {
    // Another loopback address: its own failure bucket, so the audit log can still be read.
    adminFromElsewhere = connectNodeClient(
      "connect-node Connect JSON h1 from 127.0.0.2",
      createConnectTransport({
        baseUrl: g.server.url,
        httpVersion: "1.1",
        interceptors: [bearer(g.server.adminKey)],
        nodeOptions: { localAddress: "127.0.0.2" },
      }),
      false,
    );
  });

  it("locks an address out after 5 failures, even for a valid key, with RetryInfo and Retry-After", async () => {
    const keyId = idOf(g.server.adminKey);
    const anon = g.client(undefined, "connect-node gRPC h2");
    await rejectsWith(anon.unary(SpageAPI, "ListTasks", {}), "unauthenticated");
    await rejectsWith(g.client("garbage").unary(SpageAPI, "ListTasks", {}), "unauthenticated");
    await rejectsWith(
      g.client(`spk_${keyId}_${secret()}`).unary(SpageAPI, "ListTasks", {}),
      "unauthenticated",
    );
    await rejectsWith(
      anon.unary(SpageAPI, "Authenticate", { apiKey: `spk_${keyId}_${secret()}` }),
      "unauthenticated",
    );
    await rejectsWith(
      g.client(`sps_${hex(12)}_${secret()}`).unary(SpageAPI, "ListTasks", {}),
      "unauthenticated",
    );

    const locked = await refused(
      g.admin.unary(SpageAPI, "ListTasks", {}),
      "resource_exhausted",
      /too many failed authentications/,
    );
    const delay = retryDelayMs(locked);
    assert.ok(delay > 0 && delay <= 60_000, `retry delay ${delay} ms`);
    await refused(
      anon.unary(SpageAPI, "Authenticate", { apiKey: g.server.adminKey }),
      "resource_exhausted",
      /too many failed authentications/,
    );

    const res = await fetch(`${g.server.url}/spage.api.SpageAPI/ListTasks`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${g.server.adminKey}` },
      body: "{}",
    });
    const body = (await res.json()) as JsonObject;
    assert.equal(res.status, 429);
    assert.equal(body.code, "resource_exhausted");
    const retryAfter = Number(res.headers.get("retry-after"));
    assert.ok(
      Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
      `Retry-After ${retryAfter}`,
    );

    // Public methods (health probes) still answer the locked-out address; another address is not
    // locked out.
    assert.equal((await anon.unary(SpageAPI, "HealthCheck", {})).status, "healthy");
    await adminFromElsewhere.unary(SpageAPI, "ListTasks", {});
  });

  it("records the failures and the lockout in the audit log", async () => {
    const keyId = idOf(g.server.adminKey);
    const { events } = await adminFromElsewhere.unary(SpageAPI, "ListAuditEvents", {
      principal: "unknown",
      limit: 1000,
    });
    const mine = (events as JsonObject[]).filter((e) => e.clientAddress === "127.0.0.1");
    const failed = mine.filter((e) => e.code === "unauthenticated");
    assert.equal(failed.length, 5, JSON.stringify(mine, null, 1));
    assert.ok(failed.every((e) => e.principal === "unknown"));
    assert.deepEqual(
      failed.filter((e) => e.keyId === keyId).map((e) => e.method),
      ["spage.api.SpageAPI/ListTasks", "spage.api.SpageAPI/Authenticate"],
      "the attempts naming a real key id record it",
    );
    const lockouts = mine.filter((e) => e.code === "resource_exhausted");
    assert.equal(lockouts.length, 3, JSON.stringify(mine, null, 1));
    assert.ok(lockouts.every((e) => e.principal === "unknown" && str(e.requestId) !== ""));
  });

  it("records the key id claimed by attempts refused during a lockout", async () => {
    // Every attempt during the lockout above named the admin key: an auditor must see which key
    // was being used from the locked-out address.
    const keyId = idOf(g.server.adminKey);
    const { events } = await adminFromElsewhere.unary(SpageAPI, "ListAuditEvents", {
      principal: "unknown",
      limit: 1000,
    });
    const lockouts = (events as JsonObject[]).filter((e) => e.code === "resource_exhausted");
    assert.equal(lockouts.length, 3);
    assert.deepEqual(
      lockouts.map((e) => str(e.keyId)),
      [keyId, keyId, keyId],
      JSON.stringify(lockouts, null, 1),
    );
  });
});

describe("per-principal rate limits", () => {
  const g = useGateway([
    "--auth",
    "on",
    "--auth-failures-per-minute",
    "0",
    "--rate-limits",
    "tasks:read=5/5",
  ]);

  /**
   * Makes five quick reads as `first` (a key, or one of its sessions), then a sixth as `sixth`, all
   * of one fresh key; returns the sixth's error. The bucket refills one call every 200 ms, so a
   * machine stalled that long may let the sixth through: that round proves nothing, and another
   * fresh key (a full bucket, no waiting) tries again.
   */
  async function sixthRead(
    taskId: string,
    clients: (key: { apiKey: string }) => Promise<[SuiteClient, SuiteClient]>,
  ) {
    for (let round = 0; round < 3; round++) {
      const [first, sixth] = await clients(await createKey(g.admin, ["tasks:read"]));
      const started = performance.now();
      await Promise.all(Array.from({ length: 5 }, () => first.unary(SpageAPI, "GetTaskStatus", { taskId })));
      try {
        await sixth.unary(SpageAPI, "GetTaskStatus", { taskId });
      } catch (err) {
        return err;
      }
      assert.ok(performance.now() - started >= 200, "the sixth quick read passed the limit");
    }
    assert.fail("the machine was too slow to make six reads within 200 ms, three times");
  }

  it("ends the 6th quick read with resource_exhausted and RetryInfo", async () => {
    const taskId = await submit(g.admin);
    const err = await sixthRead(taskId, async (key) => {
      const c = g.client(key.apiKey);
      return [c, c];
    });
    const limited = await refused(
      Promise.reject(err),
      "resource_exhausted",
      /rate limit of 5 calls\/s for tasks:read/,
    );
    const delay = retryDelayMs(limited);
    assert.ok(delay > 0 && delay <= 1000, `retry delay ${delay} ms`);
  });

  it("counts a key and its session tokens as one principal", async () => {
    const taskId = await submit(g.admin);
    const err = await sixthRead(taskId, async (key) => [
      g.client(str((await authenticate(g.client(), key.apiKey)).token), "grpc-js h2"),
      g.client(key.apiKey),
    ]);
    await refused(Promise.reject(err), "resource_exhausted", /rate limit/);
  });

  it("leaves other principals unaffected", async () => {
    const taskId = await submit(g.admin);
    const a = g.client((await createKey(g.admin, ["tasks:read"])).apiKey);
    const b = g.client((await createKey(g.admin, ["tasks:read"])).apiKey);
    const reads = await Promise.allSettled(
      Array.from({ length: 10 }, () => a.unary(SpageAPI, "GetTaskStatus", { taskId })),
    );
    assert.ok(
      reads.some((r) => r.status === "rejected"),
      "ten quick reads exceed a burst of 5",
    );
    assert.equal(((await b.unary(SpageAPI, "GetTaskStatus", { taskId })).task as JsonObject).id, taskId);
  });
});

/** A WatchEvents stream from the start: `opened` resolves with its first event, `stop` ends it. */
interface Watch {
  readonly opened: Promise<void>;
  readonly done: Promise<void>;
  stop(): void;
}

/** Opens WatchEvents from sequence 0 (so a stream that is open gets an event at once). */
function watch(c: SuiteClient): Watch {
  const ac = new AbortController();
  let open: () => void = () => {};
  let fail: (err: unknown) => void = () => {};
  const opened = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  opened.catch(() => {});
  const done = (async () => {
    try {
      for await (const _ of c.serverStream(
        SpageAPI,
        "WatchEvents",
        { afterSequence: "0" },
        { signal: ac.signal, timeoutMs: 30_000 },
      )) {
        open();
      }
      fail(new Error("the stream ended"));
    } catch (err) {
      fail(err);
    }
  })();
  return { opened, done, stop: () => ac.abort() };
}

describe("stream cap", () => {
  const g = useGateway([...openLimits, "--max-streams-per-principal", "2"]);

  it("refuses a third open stream of one principal until one of its two closes", async () => {
    await submit(g.admin);
    const key = await createKey(g.admin, ["tasks:read"]);
    const c = g.client(key.apiKey);
    const first = watch(c);
    const second = watch(c);
    const watches = [first, second];
    try {
      await first.opened;
      await second.opened;
      const third = watch(g.client(str((await authenticate(g.client(), key.apiKey)).token), "grpc-js h2"));
      watches.push(third);
      const err = await refused(third.opened, "resource_exhausted", /already has 2 streams open/);
      assert.ok(err instanceof CallError);
      // Another principal is not counted against it.
      const other = watch(g.admin);
      watches.push(other);
      await other.opened;

      first.stop();
      await first.done;
      await until("a new stream of the principal opens", async () => {
        const next = watch(c);
        watches.push(next);
        try {
          await next.opened;
          return true;
        } catch (e) {
          assert.ok(e instanceof CallError && e.code === "resource_exhausted", String(e));
          return false;
        }
      });
    } finally {
      for (const w of watches) w.stop();
      await Promise.all(watches.map((w) => w.done));
    }
  });
});

describe("oversized Authorization header", () => {
  const g = useGateway(openLimits);

  it("answers a 100 KiB header over HTTP/1.1 with 431 (or a closed connection) and keeps serving", async (t) => {
    let outcome: string;
    try {
      const res = await fetch(`${g.server.url}/spage.api.SpageAPI/ListTasks`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${"a".repeat(100 * 1024)}` },
        body: "{}",
      });
      await res.arrayBuffer();
      outcome = `status ${res.status}`;
    } catch (err) {
      outcome = `error ${String((err as Error).cause ?? err)}`;
    }
    t.diagnostic(outcome);
    assert.match(outcome, /^status 431$|^error .*(ECONNRESET|EPIPE|other side closed|socket)/i, outcome);

    const c = g.client(g.server.adminKey, "fetch Connect JSON h1");
    await c.unary(SpageAPI, "ListTasks", {});
  });
});
