/**
 * The gateway process on PostgreSQL, as an operator runs it: `serve --database-url` (and the
 * environment form), the first admin key printed once, `keys create --database-url` on the same
 * schema, a task submitted over Connect JSON still there after a restart, and clear errors for a
 * bad URL or schema (exit 2) and an unreachable server (exit 1, password never printed).
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { runCli, show } from "./helpers/cli-run.js";
import { startGatewayProcess } from "./helpers/gateway-process.js";
import { dropSchema, freshSchemaName, testDatabaseUrl } from "./helpers/postgres.js";

async function stop(g: ReturnType<typeof startGatewayProcess>): Promise<void> {
  g.child.kill("SIGTERM");
  await g.exited;
}

describe("the gateway process on PostgreSQL", () => {
  const schema = freshSchemaName();
  after(() => dropSchema(schema));

  it("serves from PostgreSQL, keys work on the same schema, and tasks survive a restart", async () => {
    const db = ["--database-url", testDatabaseUrl, "--database-schema", schema];
    const first = startGatewayProcess(["--port", "0", "--auth", "on", ...db]);
    let port: number;
    try {
      port = await first.port;
      const serving = await first.waitForLog((l) => typeof l.msg === "string" && l.msg.includes("serving"));
      assert.match(String(serving.database), new RegExp(`schema ${schema}`));
      assert.match(first.stderr(), /spk_/, "the first admin key is printed once");
    } catch (err) {
      await stop(first);
      throw err;
    }
    const made = await runCli([
      "keys",
      "create",
      "--name",
      "ci",
      "--scopes",
      "tasks:read,tasks:write",
      "--quiet",
      ...db,
    ]);
    assert.equal(made.code, 0, show(made));
    const key = made.stdout.trim();
    assert.match(key, /^spk_/);
    const base = `http://127.0.0.1:${port}`;
    const call = (method: string, body: object) =>
      fetch(`${base}/spage.api.SpageAPI/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: JSON.stringify(body),
      });
    try {
      const submitted = await call("SubmitTask", {
        taskId: "pg-kept-1",
        type: "playbook",
        payload: { playbook: "site.yml" },
      });
      assert.equal(submitted.status, 200, await submitted.text());
    } finally {
      await stop(first);
    }

    // Same schema, through the environment this time: the task and the key are still there.
    const second = startGatewayProcess(["--port", "0", "--auth", "on"], {
      SPAGE_DATABASE_URL: testDatabaseUrl,
      SPAGE_DATABASE_SCHEMA: schema,
    });
    try {
      const p2 = await second.port;
      assert.doesNotMatch(second.stderr(), /spk_/, "no second bootstrap key");
      const res = await fetch(`http://127.0.0.1:${p2}/spage.api.SpageAPI/GetTaskStatus`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: JSON.stringify({ taskId: "pg-kept-1" }),
      });
      assert.equal(res.status, 200);
      const body = (await res.json()) as {
        task: { id: string; status: string; payload: Record<string, string> };
      };
      assert.equal(body.task.status, "TASK_STATUS_PENDING");
      assert.equal(body.task.payload.playbook, "site.yml");
      const audit = await runCli([
        "audit",
        "verify",
        "--database-url",
        testDatabaseUrl,
        "--database-schema",
        schema,
      ]);
      assert.equal(audit.code, 0, show(audit));
    } finally {
      await stop(second);
    }
  });

  it("refuses a bad URL or schema with exit 2, and an unreachable server with exit 1", async () => {
    const badUrl = startGatewayProcess(["--port", "0", "--database-url", "mysql://x@y/z"]);
    assert.equal(await badUrl.exited, 2);
    assert.match(badUrl.stderr(), /invalid --database-url .*expected postgres:\/\/user@host:port\/database/);
    const badSchema = startGatewayProcess([
      "--port",
      "0",
      "--database-url",
      testDatabaseUrl,
      "--database-schema",
      "Bad-Name",
    ]);
    assert.equal(await badSchema.exited, 2);
    assert.match(badSchema.stderr(), /invalid --database-schema "Bad-Name"/);
    // Nothing listens on port 1: the gateway gives up at start and says where it tried.
    const down = startGatewayProcess([
      "--port",
      "0",
      "--database-url",
      "postgres://spage:s3cret@127.0.0.1:1/spage",
    ]);
    assert.equal(await down.exited, 1);
    assert.match(down.stderr(), /cannot open the database postgres:\/\/spage:\*\*\*@127\.0\.0\.1:1\/spage/);
    assert.doesNotMatch(down.stderr(), /s3cret/);
  });
});
