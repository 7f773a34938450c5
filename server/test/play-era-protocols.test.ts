/**
 * The play era over every protocol and client the gateway serves: grpc-js, connect-node (gRPC,
 * Connect binary and JSON, gRPC-Web), plain fetch with Connect JSON and `buf curl` (schema from
 * server reflection) each run a play's life through the play-era methods with credentials:
 * ExecutePlay, RegisterPlay, GetPlayStatus, progress (StreamPlayProgress and StreamTaskProgress
 * where the client can stream both ways, RegisterPlayCompletion otherwise) and CancelPlay.
 * `buf curl --list-methods` lists both eras' methods of the one SpageExecution.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { SpageExecution } from "../../gen/spage/core/execution_pb.js";
import {
  bufCurlClient,
  type CallError,
  connectNodeClients,
  fetchJsonClient,
  grpcJsClient,
  type SuiteClient,
} from "./helpers/suite-clients.js";
import { startTestServer, type TestServer } from "./helpers/test-server.js";

const bufBin = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));

describe("play era over every protocol", () => {
  let server: TestServer;
  const clients: SuiteClient[] = [];

  before(async () => {
    server = await startTestServer(["--auth", "on", "--auth-failures-per-minute", "1000"]);
    const auth = await fetch(`${server.url}/spage.api.SpageAPI/Authenticate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ apiKey: server.adminKey, clientId: "play-protocols" }),
    });
    const { token } = (await auth.json()) as { token: string };
    clients.push(
      grpcJsClient(server.url, undefined, server.adminKey),
      ...connectNodeClients(server.url, { token }),
      fetchJsonClient(server.url, token),
      bufCurlClient(server.url, "connect", undefined, token),
      bufCurlClient(server.url, "grpcweb", undefined, token),
      bufCurlClient(server.url, "grpc", undefined, token),
    );
  });

  after(async () => {
    for (const c of clients) await c.close();
    await server.close();
  });

  it("buf curl --list-methods shows both eras on one SpageExecution", async () => {
    // The gateway runs in this process: the call must not block its event loop.
    const r = await promisify(execFile)(
      bufBin,
      ["curl", "--http2-prior-knowledge", "--protocol", "grpc", "--list-methods", server.url],
      { encoding: "utf8", timeout: 30_000 },
    );
    const methods = r.stdout
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("spage.core.SpageExecution/"))
      .sort();
    assert.deepEqual(
      methods,
      SpageExecution.methods.map((m) => `spage.core.SpageExecution/${m.name}`).sort(),
    );
    for (const m of [
      "StreamPlayProgress",
      "StreamTaskProgress",
      "RegisterPlayCompletion",
      "ExecutePlay",
      "StreamProgress",
    ]) {
      assert.ok(methods.includes(`spage.core.SpageExecution/${m}`), `${m} listed`);
    }
  });

  const names = [
    "grpc-js h2",
    "connect-node gRPC h2",
    "connect-node Connect binary h2",
    "connect-node Connect JSON h1",
    "connect-node Connect binary h1",
    "connect-node gRPC-Web h1",
    "fetch Connect JSON h1",
    "buf curl connect",
    "buf curl grpcweb",
    "buf curl grpc",
  ];
  for (const [i, name] of names.entries()) {
    it(`${name}: a play's life through the play-era methods`, async () => {
      const c = clients.find((x) => x.name === name);
      assert.ok(c, `client ${name}`);
      const id = `proto-play-${i}`;
      const exec = await c.unary(SpageExecution, "ExecutePlay", {
        playId: id,
        playbook: "site.yml",
        variables: { env: "prod" },
        executor: "local",
      });
      assert.equal(exec.playId, id);
      assert.equal(exec.success, true);
      // A registration only fills what is empty; a different playbook is refused.
      await c.unary(SpageExecution, "RegisterPlay", { playId: id, inventory: "hosts.ini" });
      await assert.rejects(
        c.unary(SpageExecution, "RegisterPlay", { playId: id, playbook: "other.yml" }),
        (err: CallError) =>
          err.code === "failed_precondition" && /registered with other contents/.test(err.message),
      );
      const pending = await c.unary(SpageExecution, "GetPlayStatus", { playId: id });
      const play = pending.play as Record<string, unknown>;
      assert.equal(play.status, "PLAY_STATUS_PENDING");
      assert.equal(play.inventory, "hosts.ini");
      assert.deepEqual(play.variables, { env: "prod" });

      if (c.bidi) {
        const steps = await c.bidiStream(SpageExecution, "StreamTaskProgress", [
          { playId: id, taskId: 1, result: { taskId: 1, taskName: "ping", status: "TASK_STATUS_RUNNING" } },
          {
            playId: id,
            taskId: 1,
            result: { taskId: 1, taskName: "ping", status: "TASK_STATUS_COMPLETED", output: "pong" },
          },
        ]);
        assert.equal(steps.length, 2);
        assert.equal(
          (steps[1]?.result as Record<string, unknown> | undefined)?.status,
          "TASK_STATUS_COMPLETED",
        );
        const plays = await c.bidiStream(SpageExecution, "StreamPlayProgress", [
          { playId: id, status: "PLAY_STATUS_COMPLETED", output: "Play completed" },
        ]);
        assert.equal(plays[0]?.status, "PLAY_STATUS_COMPLETED");
      } else {
        await c.unary(SpageExecution, "RegisterPlayCompletion", {
          playId: id,
          status: "PLAY_STATUS_COMPLETED",
        });
      }
      const done = await c.unary(SpageExecution, "GetPlayStatus", { playId: id });
      const ended = done.play as Record<string, unknown>;
      assert.equal(ended.status, "PLAY_STATUS_COMPLETED");
      if (c.bidi) {
        const tasks = ended.tasks as Record<string, unknown>[];
        assert.equal(tasks.length, 1);
        assert.equal(tasks[0]?.name, "ping");
        assert.equal(tasks[0]?.output, "pong");
      }
      await assert.rejects(
        c.unary(SpageExecution, "CancelPlay", { playId: id }),
        (err: CallError) => err.code === "failed_precondition",
      );
      await assert.rejects(
        c.unary(SpageExecution, "RegisterPlayCompletion", { playId: id, status: "PLAY_STATUS_RUNNING" }),
        (err: CallError) => err.code === "invalid_argument" && /status/.test(err.message),
      );
    });
  }
});
