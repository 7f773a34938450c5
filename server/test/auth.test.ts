/**
 * Authentication and authorisation end to end, against real gateways started with `--auth on` and
 * real clients: credentials refused on every protocol, public methods, Authenticate and
 * ValidateToken, scopes, session expiry, revocation, the brute-force lockout, per-principal rate
 * limits and stream caps, anonymous Spage cores, the audit log and oversized Authorization headers.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import { ChainVerifier } from "../src/domain/audit-chain.js";
import { rejectsWith } from "./behaviour-suite.js";
import {
  bearer,
  CallError,
  connectNodeClient,
  fetchJsonClient,
  grpcJsClient,
  type SuiteClient,
  str,
} from "./helpers/suite-clients.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

/** The clients every credential check runs with. */
const clientNames = [
  "grpc-js h2",
  "connect-node Connect JSON h1",
  "connect-node gRPC-Web h1",
  "connect-node gRPC h2",
  "fetch Connect JSON h1",
] as const;
type ClientName = (typeof clientNames)[number];

/** Limits high enough that only the tests about limits ever meet one. */
const generousRates =
  "tasks:read=100000,tasks:write=100000,tasks:cancel=100000,agent=100000,execution=100000,admin=100000,streams=100000";

/** Flags of a gateway with auth on where nothing is limited. */
const openLimits = ["--auth", "on", "--auth-failures-per-minute", "0", "--rate-limits", generousRates];

/** A client of `name` on `url`, sending `Authorization: Bearer <token>` when a token is given. */
function makeClient(name: ClientName, url: string, token?: string): SuiteClient {
  const interceptors = token === undefined ? [] : [bearer(token)];
  switch (name) {
    case "grpc-js h2":
      return grpcJsClient(url, undefined, token);
    case "fetch Connect JSON h1":
      return fetchJsonClient(url, token);
    case "connect-node Connect JSON h1":
      return connectNodeClient(
        name,
        createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors }),
        false,
      );
    case "connect-node gRPC-Web h1":
      return connectNodeClient(
        name,
        createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1", interceptors }),
        false,
      );
    case "connect-node gRPC h2": {
      const sm = new Http2SessionManager(url);
      return connectNodeClient(
        name,
        createGrpcTransport({ baseUrl: url, sessionManager: sm, interceptors }),
        true,
        () => sm.abort(),
      );
    }
  }
}

/** A gateway for one describe block, and every client opened on it (closed before the gateway). */
interface Harness {
  readonly server: TestServer;
  /** A client (connect-node gRPC h2 unless told) with `token`, or without credentials. */
  client(token?: string, name?: ClientName): SuiteClient;
  /** A client holding the test's admin key. */
  readonly admin: SuiteClient;
}

/** Starts a gateway with `args` before the enclosing describe block's tests and closes it after. */
function useGateway(args: readonly string[]): Harness {
  let server: TestServer | undefined;
  let admin: SuiteClient | undefined;
  const clients: SuiteClient[] = [];
  const h: Harness = {
    get server() {
      if (!server) throw new Error("the gateway is not started");
      return server;
    },
    client(token, name = "connect-node gRPC h2") {
      const c = makeClient(name, h.server.url, token);
      clients.push(c);
      return c;
    },
    get admin() {
      admin ??= h.client(h.server.adminKey);
      return admin;
    },
  };
  before(async () => {
    server = await startTestServer(args);
  });
  after(async () => {
    for (const c of clients) await c.close();
    await server?.close();
  });
  return h;
}

const secret = () => randomBytes(32).toString("base64url");
const hex = (bytes: number) => randomBytes(bytes).toString("hex");
/** The id part of an API key or session token (`spk_<id>_<secret>`). */
const idOf = (credential: string) => credential.split("_")[1] ?? "";

let names = 0;
/** Creates an API key through CreateApiKey as `admin`; returns its id and full key. */
async function createKey(admin: SuiteClient, scopes: string[]): Promise<{ id: string; apiKey: string }> {
  names++;
  const res = await admin.unary(SpageAPI, "CreateApiKey", { name: `auth-test-${names}`, scopes });
  const key = res.key as JsonObject;
  assert.deepEqual(key.scopes, scopes);
  return { id: str(key.id), apiKey: str(res.apiKey) };
}

/** Exchanges an API key for a session token through Authenticate (a public method). */
async function authenticate(c: SuiteClient, apiKey: string, clientId = "auth-test"): Promise<JsonObject> {
  const res = await c.unary(SpageAPI, "Authenticate", { apiKey, clientId });
  assert.equal(res.success, true);
  return res;
}

/** Submits a task as `c` and returns its generated id. */
async function submit(c: SuiteClient): Promise<string> {
  const res = await c.unary(SpageAPI, "SubmitTask", { type: "playbook", payload: { playbook: "site.yml" } });
  const taskId = str(res.taskId);
  assert.notEqual(taskId, "");
  return taskId;
}

/** Expects `p` to fail with `code` and a message matching `message`. */
async function refused(p: Promise<unknown>, code: string, message: RegExp): Promise<CallError> {
  const err = await rejectsWith(p, code);
  assert.match(err.message, message);
  return err;
}

/** The google.rpc.RetryInfo delay of a connect-node error, in milliseconds. */
function retryDelayMs(err: CallError): number {
  assert.ok(err.raw instanceof ConnectError, "a connect-node error");
  const [info] = err.raw.findDetails(RetryInfoSchema);
  assert.ok(info?.retryDelay, "the error carries google.rpc.RetryInfo");
  return Number(info.retryDelay.seconds) * 1000 + info.retryDelay.nanos / 1e6;
}

/** Polls `check` every 20 ms until it returns true or `ms` pass (then fails with `what`). */
async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("credentials on every client", () => {
  const g = useGateway(openLimits);
  let adminSession = "";

  before(async () => {
    adminSession = str(
      (await authenticate(g.client(undefined, "fetch Connect JSON h1"), g.server.adminKey)).token,
    );
  });

  for (const name of clientNames) {
    describe(name, () => {
      const bidi = name === "grpc-js h2" || name === "connect-node gRPC h2";

      it('refuses calls without credentials, saying to send "Authorization: Bearer"', async () => {
        const c = g.client(undefined, name);
        const calls: [string, JsonObject][] = [
          ["ListTasks", {}],
          ["GetTaskStatus", { taskId: "x" }],
          ["CreateApiKey", { name: "x", scopes: ["admin"] }],
        ];
        for (const [method, req] of calls) {
          await refused(c.unary(SpageAPI, method, req), "unauthenticated", /Authorization: Bearer/);
        }
      });

      it("refuses garbage and forged credentials", async () => {
        const realKeyId = idOf(g.server.adminKey);
        const forged = [
          "garbage",
          `spk_${hex(8)}_${secret()}`, // well-formed key, unknown id
          `sps_${hex(12)}_${secret()}`, // well-formed session, unknown id
          `spk_${realKeyId}_${secret()}`, // a real key id with a wrong secret
          `sps_${idOf(adminSession)}_${secret()}`, // a real session id with a wrong secret
          `${g.server.adminKey}x`, // the real key, one character too long
        ];
        for (const token of forged) {
          const c = g.client(token, name);
          await refused(c.unary(SpageAPI, "ListTasks", {}), "unauthenticated", /invalid|malformed/);
        }
      });

      it("serves HealthCheck, Authenticate and grpc.health.v1 without credentials", async () => {
        const c = g.client(undefined, name);
        assert.equal((await c.unary(SpageAPI, "HealthCheck", {})).status, "healthy");
        assert.equal((await c.unary(SpageExecution, "HealthCheck", {})).status, "healthy");
        assert.equal((await c.unary(Health, "Check", { service: "" })).status, "SERVING");
        assert.equal((await c.unary(Health, "Check", { service: "spage.api.SpageAPI" })).status, "SERVING");
        const auth = await authenticate(c, g.server.adminKey, name);
        assert.match(str(auth.token), /^sps_[0-9a-f]{24}_[A-Za-z0-9_-]{43}$/);
      });

      it("serves server reflection without credentials", {
        skip: !bidi && "reflection is a bidirectional stream, which this HTTP/1.1 client cannot do",
      }, async () => {
        const c = g.client(undefined, name);
        const [res] = await c.bidiStream(ServerReflection, "ServerReflectionInfo", [{ listServices: "" }], {
          timeoutMs: 10_000,
        });
        const list = (res?.listServicesResponse ?? {}) as JsonObject;
        const services = ((list.service ?? []) as JsonObject[]).map((s) => s.name);
        assert.ok(services.includes("spage.api.SpageAPI"), JSON.stringify(services));
      });

      it("issues a session token that works and that ValidateToken recognises", async () => {
        const before = Math.floor(Date.now() / 1000);
        const auth = await authenticate(g.client(undefined, name), g.server.adminKey, `client-${name}`);
        const token = str(auth.token);
        const expiresAt = Number(auth.expiresAt);
        assert.ok(
          expiresAt >= before + 3600 - 1 && expiresAt <= Math.ceil(Date.now() / 1000) + 3600,
          `${expiresAt}`,
        );
        assert.deepEqual(auth.permissions, {
          "tasks:read": "true",
          "tasks:write": "true",
          "tasks:cancel": "true",
          agent: "true",
          execution: "true",
          admin: "true",
        });

        const c = g.client(token, name);
        await c.unary(SpageAPI, "ListTasks", {});
        const valid = await c.unary(SpageAPI, "ValidateToken", { token });
        assert.equal(valid.valid, true);
        assert.equal(valid.clientId, `client-${name}`);
        assert.equal(Number(valid.expiresAt), expiresAt);
        assert.deepEqual(valid.permissions, auth.permissions);

        const bad = await c.unary(SpageAPI, "ValidateToken", { token: `sps_${idOf(token)}_${secret()}` });
        assert.notEqual(bad.valid, true);
        assert.equal((bad.error as JsonObject).code, "unauthenticated");
        assert.match(str((bad.error as JsonObject).message), /invalid session token/);
        const garbage = await c.unary(SpageAPI, "ValidateToken", { token: "nonsense" });
        assert.notEqual(garbage.valid, true);
        assert.match(str((garbage.error as JsonObject).message), /malformed/);
      });
    });
  }
});

describe("scopes", () => {
  const g = useGateway(openLimits);

  it("lets a tasks:read key read and nothing else, naming the scope each refused call needs", async () => {
    const taskId = await submit(g.admin);
    const reader = g.client((await createKey(g.admin, ["tasks:read"])).apiKey);

    const status = await reader.unary(SpageAPI, "GetTaskStatus", { taskId });
    assert.equal((status.task as JsonObject).id, taskId);
    await reader.unary(SpageAPI, "ListTasks", {});

    await refused(
      reader.unary(SpageAPI, "SubmitTask", { type: "playbook" }),
      "permission_denied",
      /"tasks:write"/,
    );
    await refused(reader.unary(SpageAPI, "CancelTask", { taskId }), "permission_denied", /"tasks:cancel"/);
    await refused(
      reader.unary(SpageAPI, "CreateApiKey", { name: "sneaky", scopes: ["admin"] }),
      "permission_denied",
      /"admin"/,
    );
    await refused(reader.unary(SpageAPI, "ListAuditEvents", {}), "permission_denied", /"admin"/);
    await refused(reader.unary(SpageAPI, "ListApiKeys", {}), "permission_denied", /"admin"/);
    await refused(
      reader.bidiStream(SpageAPI, "StreamEvents", [], { timeoutMs: 10_000 }),
      "permission_denied",
      /"agent"/,
    );
    assert.equal(
      ((await g.admin.unary(SpageAPI, "GetTaskStatus", { taskId })).task as JsonObject).status,
      "TASK_STATUS_PENDING",
    );
  });

  it("lets a tasks:cancel key cancel, and an admin key read the audit log and keys", async () => {
    const taskId = await submit(g.admin);
    const canceller = g.client((await createKey(g.admin, ["tasks:cancel"])).apiKey);
    assert.equal((await canceller.unary(SpageAPI, "CancelTask", { taskId })).success, true);
    await refused(
      canceller.unary(SpageAPI, "GetTaskStatus", { taskId }),
      "permission_denied",
      /"tasks:read"/,
    );

    const admin = g.client((await createKey(g.admin, ["admin"])).apiKey);
    await admin.unary(SpageAPI, "ListAuditEvents", { limit: 1 });
    await admin.unary(SpageAPI, "ListApiKeys", {});
  });

  it("gives a session token exactly its key's scopes", async () => {
    const key = await createKey(g.admin, ["tasks:read"]);
    const auth = await authenticate(g.client(), key.apiKey);
    assert.deepEqual(auth.permissions, { "tasks:read": "true" });
    const session = g.client(str(auth.token));
    await session.unary(SpageAPI, "ListTasks", {});
    await refused(
      session.unary(SpageAPI, "SubmitTask", { type: "playbook" }),
      "permission_denied",
      /"tasks:write"/,
    );
  });
});

describe("session expiry", () => {
  const g = useGateway([...openLimits, "--token-ttl-seconds", "1"]);

  it("stops a token once it expires, saying that it expired", async () => {
    const issued = performance.now();
    const auth = await authenticate(g.client(), g.server.adminKey);
    const token = str(auth.token);
    const c = g.client(token, "fetch Connect JSON h1");
    try {
      await c.unary(SpageAPI, "ListTasks", {});
    } catch (err) {
      // Only a machine stalled for the token's whole second may see it refused already.
      assert.ok(performance.now() - issued >= 1000, `a fresh token was refused: ${err}`);
    }

    let last: CallError | undefined;
    await until("the token expires", async () => {
      try {
        await c.unary(SpageAPI, "ListTasks", {});
        return false;
      } catch (err) {
        assert.ok(err instanceof CallError);
        last = err;
        return true;
      }
    });
    assert.equal(last?.code, "unauthenticated");
    assert.match(last?.message ?? "", /expired at .*Authenticate/);

    const check = await g.admin.unary(SpageAPI, "ValidateToken", { token });
    assert.notEqual(check.valid, true);
    assert.match(str((check.error as JsonObject).message), /expired/);
    // The key itself does not expire: a new session works.
    const again = g.client(str((await authenticate(g.client(), g.server.adminKey)).token));
    await again.unary(SpageAPI, "ListTasks", {});
  });
});

describe("revocation", () => {
  const g = useGateway(openLimits);

  it("RevokeToken of one's own token stops it at once", async () => {
    const key = await createKey(g.admin, ["tasks:read"]);
    const token = str((await authenticate(g.client(), key.apiKey)).token);
    const c = g.client(token);
    await c.unary(SpageAPI, "ListTasks", {});
    assert.equal((await c.unary(SpageAPI, "RevokeToken", { token })).revoked, true);
    await refused(c.unary(SpageAPI, "ListTasks", {}), "unauthenticated", /revoked/);
    // Revoking it again tells it was no longer valid; the key itself still works.
    assert.notEqual((await g.admin.unary(SpageAPI, "RevokeToken", { token })).revoked, true);
    await g.client(key.apiKey).unary(SpageAPI, "ListTasks", {});
  });

  it("RevokeApiKey stops the key and every session issued from it at once", async () => {
    const key = await createKey(g.admin, ["tasks:read"]);
    const sessions = [
      g.client(str((await authenticate(g.client(), key.apiKey)).token)),
      g.client(str((await authenticate(g.client(), key.apiKey)).token), "fetch Connect JSON h1"),
    ];
    const direct = g.client(key.apiKey, "grpc-js h2");
    for (const c of [direct, ...sessions]) await c.unary(SpageAPI, "ListTasks", {});

    const res = await g.admin.unary(SpageAPI, "RevokeApiKey", { id: key.id });
    assert.equal((res.key as JsonObject).id, key.id);
    assert.ok((res.key as JsonObject).revokedAt, "the key shows when it was revoked");

    await refused(direct.unary(SpageAPI, "ListTasks", {}), "unauthenticated", /revoked/);
    for (const c of sessions) await refused(c.unary(SpageAPI, "ListTasks", {}), "unauthenticated", /revoked/);
    await refused(
      g.client().unary(SpageAPI, "Authenticate", { apiKey: key.apiKey }),
      "unauthenticated",
      /revoked/,
    );
    await rejectsWith(g.admin.unary(SpageAPI, "RevokeApiKey", { id: "ffffffffffffffff" }), "not_found");
  });

  it("refuses to revoke another caller's token without admin", async () => {
    const a = await createKey(g.admin, ["tasks:read"]);
    const b = await createKey(g.admin, ["tasks:read", "tasks:write"]);
    const tokenA = str((await authenticate(g.client(), a.apiKey)).token);
    const tokenB = str((await authenticate(g.client(), b.apiKey)).token);
    const clientB = g.client(tokenB);
    await refused(clientB.unary(SpageAPI, "RevokeToken", { token: tokenA }), "permission_denied", /"admin"/);
    // Not even with the same key's other session.
    const tokenA2 = str((await authenticate(g.client(), a.apiKey)).token);
    await refused(
      g.client(tokenA2).unary(SpageAPI, "RevokeToken", { token: tokenA }),
      "permission_denied",
      /admin/,
    );
    const clientA = g.client(tokenA);
    await clientA.unary(SpageAPI, "ListTasks", {});
    // An admin may.
    assert.equal((await g.admin.unary(SpageAPI, "RevokeToken", { token: tokenA })).revoked, true);
    await refused(clientA.unary(SpageAPI, "ListTasks", {}), "unauthenticated", /revoked/);
  });
});

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

describe("anonymous Spage cores", () => {
  describe("default policy (loopback)", () => {
    const g = useGateway(openLimits);

    for (const name of ["grpc-js h2", "fetch Connect JSON h1"] as const) {
      it(`lets ${name} from 127.0.0.1 use SpageExecution without credentials, and nothing else`, async () => {
        const core = g.client(undefined, name);
        const taskId = `anon-${name.replace(/\W+/g, "-")}-${hex(4)}`;
        assert.equal(
          (await core.unary(SpageExecution, "RegisterTask", { taskId, playbook: "site.yml" })).success,
          true,
        );
        const status = await core.unary(SpageExecution, "GetTaskStatus", { taskId });
        assert.equal((status.task as JsonObject).id, taskId);
        await refused(
          core.unary(SpageAPI, "GetTaskStatus", { taskId }),
          "unauthenticated",
          /Authorization: Bearer/,
        );
      });
    }
  });

  describe("--anonymous-execution none", () => {
    const g = useGateway([...openLimits, "--anonymous-execution", "none"]);

    it("needs credentials with the execution scope", async () => {
      const taskId = `anon-none-${hex(4)}`;
      const core = g.client(undefined, "grpc-js h2");
      await refused(
        core.unary(SpageExecution, "RegisterTask", { taskId, playbook: "site.yml" }),
        "unauthenticated",
        /Authorization: Bearer/,
      );
      await refused(
        core.unary(SpageExecution, "GetTaskStatus", { taskId }),
        "unauthenticated",
        /Authorization: Bearer/,
      );

      const reader = g.client((await createKey(g.admin, ["tasks:read"])).apiKey, "grpc-js h2");
      await refused(
        reader.unary(SpageExecution, "RegisterTask", { taskId, playbook: "site.yml" }),
        "permission_denied",
        /"execution"/,
      );
      await refused(
        reader.unary(SpageExecution, "GetTaskStatus", { taskId }),
        "permission_denied",
        /"execution"/,
      );

      const executor = g.client((await createKey(g.admin, ["execution"])).apiKey, "grpc-js h2");
      assert.equal(
        (await executor.unary(SpageExecution, "RegisterTask", { taskId, playbook: "site.yml" })).success,
        true,
      );
      assert.equal(
        ((await executor.unary(SpageExecution, "GetTaskStatus", { taskId })).task as JsonObject).id,
        taskId,
      );
    });
  });
});

describe("audit log", () => {
  const g = useGateway(openLimits);

  it("records each mutating call and authentication with who, where, what and the outcome", async () => {
    const key = await createKey(g.admin, ["tasks:read", "tasks:write", "tasks:cancel", "admin"]);
    const principal = `key:${key.id}`;
    const c = g.client(key.apiKey);

    const taskId = await submit(c);
    await c.unary(SpageAPI, "GetTaskStatus", { taskId });
    await c.unary(SpageAPI, "CancelTask", { taskId, reason: "audit test" });
    const made = await createKey(c, ["tasks:read"]);
    await c.unary(SpageAPI, "RevokeApiKey", { id: made.id });
    await authenticate(g.client(), key.apiKey, "audit-client");
    await rejectsWith(
      g.client().unary(SpageAPI, "Authenticate", { apiKey: `spk_${key.id}_${secret()}` }),
      "unauthenticated",
    );

    const { events } = await g.admin.unary(SpageAPI, "ListAuditEvents", { principal, limit: 1000 });
    const records = events as JsonObject[];
    assert.deepEqual(
      records.map((e) => [e.method, str(e.code), str(e.taskId)]),
      [
        ["spage.api.SpageAPI/SubmitTask", "ok", taskId],
        ["spage.api.SpageAPI/CancelTask", "ok", taskId],
        ["spage.api.SpageAPI/CreateApiKey", "ok", ""],
        ["spage.api.SpageAPI/RevokeApiKey", "ok", ""],
        ["spage.api.SpageAPI/Authenticate", "ok", ""],
      ],
      "one record per mutating call and authentication; none for GetTaskStatus",
    );
    for (const e of records) {
      assert.equal(e.principal, principal);
      assert.equal(e.keyId, key.id);
      assert.equal(e.clientAddress, "127.0.0.1");
      assert.notEqual(str(e.requestId), "", `${e.method} has a request id`);
      assert.ok(e.time);
    }
    assert.equal(new Set(records.map((e) => e.requestId)).size, records.length, "request ids differ");
    assert.match(str(records[2]?.detail), new RegExp(`created key ${made.id}`));
    assert.match(str(records[3]?.detail), new RegExp(`revoked key ${made.id}`));
    assert.match(str(records[4]?.detail), /client_id=audit-client/);

    const unknown = await g.admin.unary(SpageAPI, "ListAuditEvents", { principal: "unknown", limit: 1000 });
    const failed = (unknown.events as JsonObject[]).filter((e) => e.keyId === key.id);
    assert.deepEqual(
      failed.map((e) => [e.method, e.code, e.clientAddress]),
      [["spage.api.SpageAPI/Authenticate", "unauthenticated", "127.0.0.1"]],
    );
    assert.notEqual(str(failed[0]?.requestId), "");

    const byTask = await g.admin.unary(SpageAPI, "ListAuditEvents", { taskId, limit: 1000 });
    assert.deepEqual(
      (byTask.events as JsonObject[]).map((e) => e.method),
      ["spage.api.SpageAPI/SubmitTask", "spage.api.SpageAPI/CancelTask"],
    );
  });

  it("serves a hash chain that verifies, page after page, also after concurrent calls", async () => {
    await Promise.all(Array.from({ length: 20 }, () => submit(g.admin)));
    const v = new ChainVerifier();
    let after = "0";
    let pages = 0;
    for (;;) {
      const page = await g.admin.unary(SpageAPI, "ListAuditEvents", { afterSequence: after, limit: 3 });
      pages++;
      for (const e of (page.events as JsonObject[] | undefined) ?? []) {
        const ok = v.add({
          sequence: BigInt(str(e.sequence)),
          time: new Date(str(e.time)),
          principal: str(e.principal),
          keyId: str(e.keyId),
          clientAddress: str(e.clientAddress),
          method: str(e.method),
          taskId: str(e.taskId),
          code: str(e.code),
          requestId: str(e.requestId),
          detail: str(e.detail),
          prevHash: str(e.prevHash),
          hash: str(e.hash),
        });
        assert.ok(ok, `record ${str(e.sequence)}: ${v.broken?.reason}`);
      }
      after = str(page.nextAfterSequence);
      if (after === "" || after === "0") break;
    }
    assert.ok(v.checked >= 26, `${v.checked} records`);
    assert.ok(pages >= 9, "more than one page");
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
