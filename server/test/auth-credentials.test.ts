/**
 * Credentials end to end, against real gateways started with `--auth on` and every client
 * (grpc-js, connect-node Connect/gRPC-Web/gRPC, fetch): missing, garbage and forged credentials
 * refused, public methods served without credentials, Authenticate and ValidateToken, session
 * expiry, and revocation of session tokens and API keys.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import { rejectsWith } from "./behaviour-suite.js";
import {
  authenticate,
  clientNames,
  createKey,
  hex,
  idOf,
  openLimits,
  refused,
  secret,
  until,
  useGateway,
} from "./helpers/auth-clients.js";
import { CallError, str } from "./helpers/suite-clients.js";

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
