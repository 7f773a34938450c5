/**
 * Authorisation end to end, against real gateways started with `--auth on`: what each scope lets a
 * key (and the session tokens issued from it) do, naming the scope a refused call needs, and the
 * anonymous-execution policy for Spage cores (loopback by default, or `none`).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JsonObject } from "@bufbuild/protobuf";
import { SpageAPI } from "../../gen/spage/api/tasks_pb.js";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import {
  authenticate,
  createKey,
  hex,
  openLimits,
  refused,
  submit,
  useGateway,
} from "./helpers/auth-clients.js";
import { str } from "./helpers/suite-clients.js";

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
