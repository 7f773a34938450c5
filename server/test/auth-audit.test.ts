/**
 * The audit log end to end, against a real gateway started with `--auth on`: one record per
 * mutating call and authentication (who, from where, what, the outcome), failed authentications,
 * filters by principal and task, and a hash chain that verifies page after page.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import { ChainVerifier } from "../src/domain/audit-chain.js";
import { rejectsWith } from "./behaviour-suite.js";
import { authenticate, createKey, openLimits, secret, submit, useGateway } from "./helpers/auth-clients.js";
import { str } from "./helpers/suite-clients.js";

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

  it("records a repeated submit, a refused one and ExecuteTask once each", async () => {
    const key = await createKey(g.admin, ["tasks:write", "execution"]);
    const c = g.client(key.apiKey);
    const taskId = `audit-repeat-${secret().slice(0, 8)}`;
    const request = { taskId, type: "playbook", payload: { playbook: "site.yml" } };
    await c.unary(SpageAPI, "SubmitTask", request);
    await c.unary(SpageAPI, "SubmitTask", request);
    await rejectsWith(c.unary(SpageAPI, "SubmitTask", { ...request, type: "other" }), "already_exists");
    const exec = await c.unary(SpageExecution, "ExecuteTask", { playbook: "site.yml" });
    const { events } = await g.admin.unary(SpageAPI, "ListAuditEvents", {
      principal: `key:${key.id}`,
      limit: 1000,
    });
    assert.deepEqual(
      (events as JsonObject[]).map((e) => [e.method, e.code, e.taskId]),
      [
        ["spage.api.SpageAPI/SubmitTask", "ok", taskId],
        ["spage.api.SpageAPI/SubmitTask", "ok", taskId],
        ["spage.api.SpageAPI/SubmitTask", "already_exists", taskId],
        ["spage.core.SpageExecution/ExecuteTask", "ok", str(exec.taskId)],
      ],
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
